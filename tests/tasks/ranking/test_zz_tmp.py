def test_print(ml_ranking_run):
    print("SECONDS", ml_ranking_run["seconds"])
    print("TUNING", {k: v for k, v in ml_ranking_run["facts"]["tuning"].items() if not isinstance(v, (dict, list))})
