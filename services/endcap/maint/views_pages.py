"""The read-only pages: overview, logs, services, update, models, POS link, cameras, signage, network, audit."""
from __future__ import annotations

import time

from flask import Blueprint, Response, jsonify, render_template, request

from ..core import messages as m
from . import sysinfo
from .app import fail, maint
from .logs import BadInput, LogQuery, PRIORITIES, read
from .sources import EMPTY, Failure

bp = Blueprint("pages", __name__)


def _ago(ts) -> str:
    if not ts:
        return "never"
    return sysinfo.human_s(max(0.0, time.time() - ts)) + " ago"


@bp.app_template_filter("ago")
def ago_filter(ts) -> str:
    return _ago(ts)


@bp.app_template_filter("utc")
def utc_filter(ts) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts)) if ts else "—"


def health_rows() -> list[dict]:
    mt = maint()
    now = time.time()
    rows = []
    for svc in mt.cfg.services:
        seen = mt.feeds.health.get(svc)
        if seen is None:
            rows.append({"service": svc, "ok": False, "status": "not answering: no health report received", "error": "",
                         "unit": f"endcap-{svc}.service"})
            continue
        h: m.Health = seen.body
        stale = now - seen.received_at > 15
        rows.append({"service": svc, "ok": h.ok and not stale,
                     "status": (f"not answering: last report {_ago(seen.received_at)}" if stale else h.status),
                     "error": f"{h.last_error.message} [{h.last_error.code}]" if h.last_error else "",
                     "last_success": h.last_success, "unit": f"endcap-{svc}.service"})
    return rows


@bp.get("/")
def overview():
    mt = maint()
    up = mt.feeds.update.body if mt.feeds.update else None
    return render_template("overview.html", rows=health_rows(), uptime=sysinfo.human_s(sysinfo.uptime_s()),
                           disk=sysinfo.disk(mt.state_dir), temp=sysinfo.temperature_c(), synced=sysinfo.time_synced(),
                           update=up)


@bp.get("/logs")
def logs():
    mt = maint()
    try:
        q = LogQuery.parse(request.args, mt.cfg.units)
    except BadInput as e:
        return fail(400, str(e), action="logs", target="bad filter")
    try:
        entries, error = read(q, mt.cfg.journalctl, mt.cfg.journal_directory), ""
    except Exception as e:  # the journal is a source like any other: say it, never 500
        entries, error = [], f"journal not answering: {e}"
    return render_template("logs.html", q=q, entries=entries, error=error, units=mt.cfg.units, priorities=PRIORITIES,
                           archives=sorted(p.name for p in mt.diag_dir.glob("diag-*.tar.gz"))[::-1]
                           if mt.diag_dir.exists() else [])


@bp.get("/services")
def services():
    mt = maint()
    units = []
    for u in mt.cfg.units:
        try:
            active, sub = mt.systemd.state(u)
        except Exception as e:
            active, sub = "unknown", f"systemd not answering: {e}"
        units.append({"unit": u, "active": active, "sub": sub})
    health = {r["unit"]: r for r in health_rows()}
    return render_template("services.html", units=units, health=health)


def update_status():
    mt = maint()
    st = mt.bus.call("updater", "status", EMPTY, m.UpdateStatus)
    if isinstance(st, Failure) and mt.feeds.update is not None:
        return mt.feeds.update.body, st.reason + " (showing its last published status)"
    return (None, st.reason) if isinstance(st, Failure) else (st, "")


@bp.get("/update")
def update():
    st, error = update_status()
    return render_template("update.html", st=st, error=error, limit=maint().cfg.max_upload_bytes)


@bp.get("/api/update/status")
def api_update_status():
    st, error = update_status()
    if st is None:
        return jsonify({"ok": False, "message": error})
    last = st.history[-1] if st.history else None
    return jsonify({"ok": True, "state": st.state, "progress": st.progress, "message": st.message,
                    "last_result": st.last_result, "version": st.version, "error": error,
                    "busy": st.state not in ("idle", "failed"),
                    "last": {"at": last.at, "version": last.version, "outcome": last.outcome, "reason": last.reason}
                    if last else None})


@bp.get("/models")
def models():
    r = maint().bus.call("trust", "models", EMPTY, m.ModelsReply)
    return render_template("models.html", r=None if isinstance(r, Failure) else r,
                           error=r.reason if isinstance(r, Failure) else "")


@bp.get("/pos")
def pos():
    r = maint().bus.call("pos", "link", EMPTY, m.PosLink)
    return render_template("pos.html", r=None if isinstance(r, Failure) else r,
                           error=r.reason if isinstance(r, Failure) else "", test=None)


@bp.get("/cameras")
def cameras():
    r = maint().bus.call("vision", "cameras", EMPTY, m.CamerasReply)
    return render_template("cameras.html", r=None if isinstance(r, Failure) else r,
                           error=r.reason if isinstance(r, Failure) else "")


@bp.get("/cameras/snapshot.jpg")
def snapshot():
    cam = request.args.get("camera", "")
    if not (0 < len(cam) <= 64 and cam.replace("-", "").replace("_", "").isalnum()):
        return fail(400, "camera: not a camera name", action="snapshot", target=cam[:64])
    r = maint().bus.call("vision", "snapshot", m.SnapshotRequest(cam), m.Snapshot, timeout_ms=5000)
    if isinstance(r, Failure):
        return fail(503, r.reason)
    return Response(r.jpeg, mimetype="image/jpeg")


@bp.get("/signage")
def signage():
    r = maint().bus.call("signage", "screens", EMPTY, m.ScreensReply)
    return render_template("signage.html", r=None if isinstance(r, Failure) else r,
                           error=r.reason if isinstance(r, Failure) else "", pushed="")


@bp.get("/network")
def network():
    mt = maint()
    return render_template("network.html", current=mt.network.applier.current(), machine=mt.network.machine,
                           iface=mt.cfg.network_interface, confirm_s=mt.cfg.network_confirm_s, error="")


@bp.get("/audit")
def audit_page():
    return render_template("audit.html", records=maint().audit.tail(300))
