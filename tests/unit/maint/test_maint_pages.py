"""Pages drawn from real typed replies over the real bus (models, POS link, cameras with snapshot), and the
actions that call them (model rollback with re-authentication, POS test connection)."""
from __future__ import annotations

from tests.fixtures.maint import PASSWORD


def test_pages_draw_replies_and_actions_call_the_services(maint_app, answering):
    peers = answering(maint_app.paths)
    maint_app.login()
    body = maint_app.get("/models").get_data(as_text=True)
    assert "basket-blend 2026.11.2 (epoch 3)" in body and "2026.10.1" in body and ">yes<" in body
    body = maint_app.get("/pos").get_data(as_text=True)
    assert "sql (postgresql)" in body and "1.4 s" in body and "<td>2</td>" in body
    r = maint_app.post("/pos/test")
    assert r.status_code == 200 and "Connection works: read 1 row (12 ms)" in r.get_data(as_text=True)
    body = maint_app.get("/cameras").get_data(as_text=True)
    assert "cam-1" in body and "14.8 frames/s" in body and "shelf-7a" in body
    r = maint_app.get("/cameras/snapshot.jpg", query_string={"camera": "cam-1"})
    assert r.status_code == 200 and r.mimetype == "image/jpeg" and r.data[:2] == b"\xff\xd8"
    # model rollback needs a fresh password
    maint_app.clock.advance(maint_app.cfg.reauth_s + 1)
    r = maint_app.post("/models/rollback")
    assert r.status_code == 302 and "/reauth" in r.headers["Location"] and not peers.rolled_back.is_set()
    maint_app.post("/reauth", {"password": PASSWORD})
    assert maint_app.post("/models/rollback").status_code == 302
    assert peers.rolled_back.is_set()
    actions = {x["action"]: x for x in maint_app.audit()}
    assert actions["model-rollback"]["target"] == "basket-blend 2026.10.1" and actions["pos-test"]["result"] == "ok"
