from tasks.io import ArtifactRef
from tasks.profile import SplitSection
from tasks.stage import NOT_IN_CACHE_KEY, _project_dependencies, _token


def test_cache_key_code_covers_imported_project_modules_even_lazy_ones():
    deps = _project_dependencies("tasks.candidates")
    assert {"tasks.candidates", "tasks.hybrid", "tasks.ranking", "tasks.content", "tasks.cf"} <= set(deps)
    assert "tasks.synthetic" in _project_dependencies("tasks.ingest")  # imported inside a function


def test_a_package_counts_as_one_module_with_every_file_in_its_source_hash(tmp_path):
    from tasks.stage import _module_files, source_hash

    assert _project_dependencies("tasks.tuning._stage")[0:0] == ()
    assert "tasks.ranking" in _project_dependencies("tasks.tuning._stage")  # via the package
    files = {f.name for f in _module_files("tasks.ranking")}
    assert {"__init__.py", "_engine.py", "_mmr.py"} <= files
    assert len(source_hash(["tasks.ranking"])) == 64


def test_cache_tokens_ignore_where_a_file_lives_and_the_budget():
    a = ArtifactRef(run_dir="/runs/a", relpath="data/train.parquet", fingerprint="f" * 64)
    b = ArtifactRef(run_dir="/runs/b", relpath="data/train.parquet", fingerprint="f" * 64)
    assert _token(a) == _token(b)
    assert _token(SplitSection()) != _token(SplitSection(holdout_fraction=0.3))
    assert {"run_dir", "budget_seconds"} <= NOT_IN_CACHE_KEY
