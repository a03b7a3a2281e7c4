from pathlib import Path

import pytest
from pydantic import ValidationError

from tasks.profile import ProfileError, available_profiles, load_profile, parse_set_overrides


def test_shipped_profiles_load():
    names = available_profiles()
    for required in ("demo", "ci", "ml-latest-small", "bench-32m"):
        assert required in names
    for name in names:
        assert load_profile(name, environ={}).name == name


def test_bench_profile_has_the_ml32m_shape():
    cfg = load_profile("bench-32m", environ={}).synthetic
    assert (cfg.n_users, cfg.n_movies, cfg.n_ratings) == (200_948, 87_585, 32_000_204)


def test_unknown_key_names_the_key_and_the_file(tmp_path: Path):
    (tmp_path / "typo.toml").write_text("[eval]\nbatchsize = 3\n")
    with pytest.raises(ProfileError) as info:
        load_profile("typo", profiles_dir=tmp_path, environ={})
    assert "eval.batchsize" in str(info.value) and "typo.toml" in str(info.value)


def test_wrong_type_and_out_of_range_are_rejected():
    with pytest.raises(ProfileError, match="policy.alpha_cold"):
        load_profile("ci", ["policy.alpha_cold=1.5"], environ={})
    with pytest.raises(ProfileError, match="eval.batch_size"):
        load_profile("ci", ['eval.batch_size="many"'], environ={})
    with pytest.raises(ProfileError, match="k_values"):
        load_profile("ci", ["eval.k_values=[0, 10]"], environ={})


def test_set_overrides_and_old_environment_variables():
    env = {"POLICY_ALPHA_HEAVY": "0.9", "EVAL_K_VALUES": "20,5", "EVAL_SEED": "7"}
    prof = load_profile("ci", ["collab.model=puresvd", "eval.batch_size=7"], environ=env)
    assert prof.collab.model == "puresvd"
    assert prof.eval.batch_size == 7
    assert prof.policy.alpha_heavy == 0.9
    assert prof.eval.k_values == (5, 20)
    assert prof.eval.seed == 7


def test_set_needs_a_section(tmp_path):
    with pytest.raises(ProfileError, match="section.key=value"):
        parse_set_overrides(["seed=3"])


def test_profiles_are_frozen_and_round_trip_through_toml(tmp_path: Path):
    prof = load_profile("ci", environ={})
    with pytest.raises(ValidationError):
        prof.eval.seed = 3  # type: ignore[misc]
    (tmp_path / "resolved.toml").write_text(prof.to_toml())
    again = load_profile("resolved", profiles_dir=tmp_path, environ={})
    assert again.model_dump(exclude={"name"}) == prof.model_dump(exclude={"name"})


def test_extends_inherits_and_overrides():
    ci, demo = load_profile("ci", environ={}), load_profile("demo", environ={})
    assert ci.synthetic.n_users < demo.synthetic.n_users
    assert ci.split == demo.split


def test_a_negative_seed_is_refused_naming_the_set_argument():
    with pytest.raises(ProfileError) as info:
        load_profile("ci", ["run.seed=-1"], environ={})
    assert "--set run.seed=-1" in str(info.value) and "greater than or equal to 0" in str(info.value)
    with pytest.raises(ProfileError, match="environment variable EVAL_SEED"):
        load_profile("ci", environ={"EVAL_SEED": "-5"})


@pytest.mark.parametrize(
    "pair",
    [
        ["eval.batch_size=3", "eval.batch_size.x=1"],
        ["eval.batch_size.x=1", "eval.batch_size=3"],
    ],
)
def test_a_setting_and_a_key_inside_it_conflict(pair):
    with pytest.raises(ProfileError) as info:
        load_profile("ci", pair, environ={})
    assert "eval.batch_size" in str(info.value) and "--set" in str(info.value)


def test_a_set_inside_a_profile_setting_names_the_set_argument():
    with pytest.raises(ProfileError) as info:
        load_profile("ci", ["eval.batch_size.x=1"], environ={})
    assert "--set eval.batch_size.x=1" in str(info.value)


def test_a_folder_or_a_file_that_is_not_utf8_is_named(tmp_path: Path):
    with pytest.raises(ProfileError, match="is a folder"):
        load_profile(str(tmp_path), environ={})
    (tmp_path / "latin1.toml").write_bytes('[run]\ndescription = "caf\xe9"\n'.encode("latin-1"))
    with pytest.raises(ProfileError, match="not UTF-8"):
        load_profile(str(tmp_path / "latin1.toml"), environ={})
