"""Training, evaluation protocol, packaging and the gateway's scoring, on small real and synthetic data."""
from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from endcap_models import cli, scoring
from endcap_models.calibrate import apply_table
from endcap_models.data import DataError, from_lines, load_complete_journey, load_pos_sqlite
from endcap_models.evaluate import Protocol, _histories, evaluate, make_queries, train_calibrated
from endcap_models.package import write_package
from endcap_models.report import gate, markdown
from endcap_models.train import Params, fit
from endcap.offers.model import load_model
from endcap.pos.store import EdgeStore

DAY = 86400.0


def synthetic(n_baskets: int = 400, seed: int = 0):
    """Baskets over 8 weeks: item 'a' with 'b' often, 'c' alone; households 0..19, some anonymous."""
    rng = np.random.default_rng(seed)
    rows = []
    for b in range(n_baskets):
        ts = 1_500_000_000 + b * (56 * DAY / n_baskets)
        hh = "" if b % 10 == 0 else str(b % 20)
        items = set(rng.choice(list("cdefgh"), size=rng.integers(1, 4), replace=True))
        if rng.random() < 0.5:
            items |= {"a", "b"} if rng.random() < 0.8 else {"a"}
        for it in items | {"c"}:  # a duplicate line of 'c' collapses
            rows.append((b, hh, ts, 1 + int((ts - 1_500_000_000) // (7 * DAY)), it))
    rows.append((0, "", 1_500_000_000, 1, "c"))
    k, h, t, w, s = (np.array(c) for c in zip(*rows))
    return from_lines("synthetic", k, h, t, w, s)


def test_baskets_are_time_ordered_distinct_and_anonymous_is_minus_one():
    d = synthetic()
    assert (np.diff(d.ts) >= 0).all() and d.count.sum() == len(d.items)
    for b in range(d.n_baskets):
        its = d.basket_items(b)
        assert (np.diff(its) > 0).all()  # distinct, sorted
    assert (d.household[::10] == -1).all() and (d.household[1:10] >= 0).all()


def test_jaccard_and_rules_match_a_brute_force_count():
    d = synthetic()
    f = fit(d, d.week <= 6, Params(vocab_min_baskets=5, top_n=3, rule_min_support=10))
    sets = [set(d.skus[d.basket_items(b)].tolist()) for b in np.flatnonzero(d.week <= 6)]
    n = {s: sum(s in x for x in sets) for s in f.skus}
    for i, x in enumerate(f.skus):
        expect = {}
        for j, y in enumerate(f.skus):
            both = sum(x in s and y in s for s in sets)
            if i != j and both:
                expect[j] = both / (n[x] + n[y] - both)
        top = sorted(expect.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
        row = f.jac[i]
        got = sorted(zip(row.indices.tolist(), row.data.tolist()), key=lambda kv: (-kv[1], kv[0]))
        assert [j for j, _ in got] == [j for j, _ in top] and np.allclose([v for _, v in got], [v for _, v in top], atol=1e-6)
        rules = dict(zip(f.rules[i].indices.tolist(), f.rules[i].data.tolist()))
        for j, conf in rules.items():
            both = sum(x in s and f.skus[j] in s for s in sets)
            assert both >= 10 and conf == pytest.approx(both / n[x], rel=1e-6)
    assert f.prior[list(f.skus).index("c")] == pytest.approx(1.0)


def test_the_gateway_scores_exactly_as_the_evaluation_does(tmp_path):
    d = load_complete_journey(stores=[367])
    proto = Protocol()
    f, tables, _ = train_calibrated(d, Params(lam_history=3.0), proto)
    model = load_model(write_package(tmp_path / "pkg", f, tables))
    hist = _histories(d, f, proto)
    known = 0
    for b in np.flatnonzero(d.week >= 45)[:40]:
        hh, t = int(d.household[b]), float(d.ts[b])
        before = np.flatnonzero((d.household == hh) & (d.ts < t))
        profile = model.profile([(float(d.ts[j]), d.skus[d.basket_items(j)].tolist()) for j in before], t)
        dg = hist.digest(hh, t)
        assert (profile is None) == (dg is None)
        want = (apply_table(tables["history"], scoring.history_raw(f, dg)) if dg is not None
                else apply_table(tables["anonymous"], f.prior))
        assert np.allclose(model.relevance(list(f.skus), profile), want, atol=1e-12)
        known += dg is not None
    assert known >= 20
    assert model.relevance(list(f.skus[:3]), None) == pytest.approx(apply_table(tables["anonymous"], f.prior[:3]).tolist())


def test_evaluation_on_one_store_measures_what_the_protocol_says():
    d = load_complete_journey(stores=[367])
    proto = Protocol(max_queries=300)
    rep = evaluate(d, Params(), proto, category_of={s: "X" for s in d.skus.tolist()}, full_catalogue=False)
    f = fit(d, proto.masks(d)["train"], Params())
    qs = make_queries(d, f, proto.masks(d)["test"], proto.seed, limit=300)
    top = np.argsort(-f.prior, kind="stable")
    manual = sum(q.held in [i for i in top if i not in set(q.context.tolist())][:5] for q in qs) / len(qs)
    assert rep["ranking"]["popularity"]["hr5"] == pytest.approx(manual)
    assert rep["ranking"]["blend"]["hr5"] > rep["ranking"]["popularity"]["hr5"]
    assert all(r["pairs"] == 0 or 0 <= r["observed"] <= 1 for r in rep["reliability"]["history"])
    assert "Gate" in markdown({**rep, "tuning": [], "package": None})
    q = qs[0]  # a held-out item is never part of its own context, and the context is the rest of the basket
    assert q.held not in q.context.tolist()
    assert sorted(q.context.tolist() + [q.held]) == sorted(x for x in f.vocab_of[d.basket_items(q.basket)].tolist() if x >= 0)


def test_gate_names_what_failed():
    rep = {"ranking": {"blend": {"hr5": 0.1}}, "reliability": {
        "history": [{"decile": "0.3-0.4", "pairs": 500, "predicted": 0.35, "observed": 0.45}],
        "anonymous": [{"decile": "0.1-0.2", "pairs": 50, "predicted": 0.15, "observed": 0.5}]}}
    failed = gate(rep)
    assert len(failed) == 2 and "HR@5" in failed[0] and "0.3-0.4" in failed[1]  # 50 pairs: too few to judge


def test_pos_sqlite_history_loads_completed_sale_lines_only(tmp_path):
    db = tmp_path / "pos.db"
    EdgeStore(db).close()
    con = sqlite3.connect(db)
    rows = [("t1", "completed", "s1", 1_700_000_000.0, [("1", "A", 1.0, "sale"), ("2", "B", 2.0, "sale")]),
            ("t2", "cancelled", "s1", 1_700_000_100.0, [("1", "C", 1.0, "sale")]),
            ("t3", "completed", None, 1_700_900_000.0, [("1", "A", 1.0, "sale"), ("2", "D", -1.0, "return")])]
    for txn, status, shopper, ts, lines in rows:
        con.execute("INSERT INTO txn_versions VALUES ('s',?,?,?,?,?,?,?,?,?)", (txn, "v1", "pos", status, ts, "2023-11-14", shopper, 0, ts))
        con.execute("INSERT INTO txn_current VALUES ('s',?,?,?,?,?)", (txn, "v1", status, "2023-11-14", shopper))
        for line, sku, qty, typ in lines:
            con.execute("INSERT INTO txn_lines VALUES ('s',?,?,?,?,?,?,?)", (txn, "v1", int(line), sku, qty, 1.0, typ))
    con.commit()
    con.close()
    d = load_pos_sqlite(db)
    assert d.n_baskets == 2 and sorted(d.skus.tolist()) == ["A", "B"]
    assert d.household.tolist() == [0, -1] and d.households.tolist() == ["s1"] and d.week.tolist() == [1, 2]
    with pytest.raises(DataError):
        load_pos_sqlite(tmp_path / "missing.db")


def test_cli_trains_a_loadable_package_and_reports_bad_input(tmp_path, capsys):
    assert cli.main(["train", "--stores", "367", "--out", str(tmp_path / "p"), "--version", "7"]) == 0
    assert load_model(tmp_path / "p").version == "7"
    assert cli.main(["train", "--stores", "367", "--out", str(tmp_path / "p")]) == 2  # exists, no --replace
    assert cli.main(["train", "--source", str(tmp_path / "nope.db"), "--out", str(tmp_path / "q")]) == 2
    assert "nope.db" in capsys.readouterr().err
