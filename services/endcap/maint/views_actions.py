"""What the technician may change: restart/reboot, install a bundle, roll back a model, test the POS link,
push a test offer, apply/confirm network settings, make and download a diagnostic archive.

Each action is audited with its result; installing, model rollback and network changes need a fresh
password (re-authentication).
"""
from __future__ import annotations

import json
import time

from flask import Blueprint, Response, jsonify, redirect, render_template, request, send_file, url_for

from ..core import messages as m
from .app import audit, fail, fresh_auth, maint, session
from .logs import BadInput, LogQuery, diagnostic_path, read, write_diagnostics
from .network import ApplyFailed, Settings
from .redact import redact
from .sources import EMPTY, Failure
from .systemd import NotAllowed
from .upload import UploadError, receive
from .views_pages import health_rows

bp = Blueprint("actions", __name__)


def _needs_reauth(page: str):
    s = session()
    if fresh_auth(s):
        return None
    if request.headers.get("X-Requested-With") == "fetch":
        return jsonify({"ok": False, "reauth": True, "message": "Enter your password again first."}), 403
    return redirect(url_for("auth.reauth", next=page))


@bp.post("/services/restart")
def restart():
    unit = request.form.get("unit", "")
    mt = maint()
    try:
        job = mt.systemd.restart(unit)
    except NotAllowed as e:
        return fail(403, str(e), action="restart", target=unit[:80])
    except Exception as e:
        audit("restart", unit, f"failed: {e}")
        return fail(503, f"systemd not answering: {e}")
    audit("restart", unit, f"ok: {job}")
    return redirect(url_for("pages.services", restarted=unit))


@bp.post("/services/reboot")
def reboot():
    try:
        maint().systemd.reboot()
    except Exception as e:
        audit("reboot", "", f"failed: {e}")
        return fail(503, f"systemd not answering: {e}")
    audit("reboot", "device")
    return render_template("error.html", status=200, message="Rebooting. The page comes back in a minute or two.")


BUSY_OK = ("idle", "failed")  # updater states in which it takes a new bundle


def updater_busy() -> tuple[int, str] | None:
    """(status, why) when the updater cannot take a bundle now (busy or not answering), else None."""
    st = maint().bus.call("updater", "status", EMPTY, m.UpdateStatus)
    if isinstance(st, Failure):
        return 503, st.reason
    if st.state not in BUSY_OK:
        return 409, f"The updater is busy ({st.state}: {st.message}). Wait until it has finished."
    return None


@bp.get("/api/update/ready")
def upload_ready():
    """The probe the page asks before sending a bundle: password fresh enough, updater free."""
    if not fresh_auth(session()):
        return jsonify({"ok": False, "reauth": True, "message": "Enter your password again first."})
    busy = updater_busy()
    if busy is not None:
        return jsonify({"ok": False, "message": busy[1]})
    return jsonify({"ok": True, "message": ""})


@bp.post("/update/upload")
def upload():
    mt = maint()
    refused = _needs_reauth("/update")
    if refused is not None:
        audit("install", "upload", "refused: re-authentication needed")
        return refused
    if not mt.upload_slot.acquire(blocking=False):
        audit("install", "upload", "refused: another upload is in progress")
        return jsonify({"ok": False, "message": "Another upload is in progress. Wait until it has finished."}), 409
    try:
        busy = updater_busy()
        if busy is not None:
            audit("install", "upload", f"refused: {busy[1]}")
            return jsonify({"ok": False, "message": busy[1]}), busy[0]
        try:
            path = receive(request.stream, request.content_length, mt.upload_dir, mt.cfg.max_upload_bytes)
        except UploadError as e:
            audit("install", "upload", f"refused: {e}")
            return jsonify({"ok": False, "message": str(e)}), e.status
        st = mt.bus.call("updater", "install_file", m.InstallBundleRequest(str(path)), m.UpdateStatus, timeout_ms=30000)
    finally:
        mt.upload_slot.release()
    if isinstance(st, Failure):
        if st.answered:  # the updater refused it and never took the file: ours to remove
            path.unlink(missing_ok=True)
            audit("install", path.name, f"refused: {st.reason}")
            return jsonify({"ok": False, "message": st.reason}), 422
        # no answer: the updater may have taken it (then it removes the file itself); the status says
        audit("install", path.name, f"unknown: {st.reason}")
        return jsonify({"ok": False, "message": f"{st.reason}; the status below shows whether the install started."}), 504
    audit("install", path.name, f"accepted: {st.state}")
    return jsonify({"ok": True, "message": st.message or st.state, "state": st.state, "progress": st.progress})


@bp.post("/update/check")
def check():
    st = maint().bus.call("updater", "check", EMPTY, m.UpdateStatus, timeout_ms=10000)
    audit("update-check", "", st.reason if isinstance(st, Failure) else f"ok: {st.state}")
    if isinstance(st, Failure):
        return fail(503, st.reason)
    return redirect(url_for("pages.update"))


@bp.post("/models/rollback")
def model_rollback():
    refused = _needs_reauth("/models")
    if refused is not None:
        return refused
    r = maint().bus.call("trust", "rollback", EMPTY, m.Installed, timeout_ms=30000)
    if isinstance(r, Failure):
        return fail(502, r.reason, action="model-rollback", target="")
    audit("model-rollback", f"{r.name} {r.version}")
    return redirect(url_for("pages.models"))


@bp.post("/pos/test")
def pos_test():
    mt = maint()
    t = mt.bus.call("pos", "test_link", EMPTY, m.PosLinkTest, timeout_ms=10000)
    link = mt.bus.call("pos", "link", EMPTY, m.PosLink)
    audit("pos-test", "", t.reason if isinstance(t, Failure) else ("ok" if t.ok else f"failed: {t.detail}"))
    return render_template("pos.html", r=None if isinstance(link, Failure) else link,
                           error=link.reason if isinstance(link, Failure) else "",
                           test=t)


@bp.post("/signage/push")
def signage_push():
    mt = maint()
    display = request.form.get("display", "")
    if not (0 < len(display) <= 64 and display.replace("-", "").replace("_", "").isalnum()):
        return fail(400, "display: not a display name", action="push-test-offer", target=display[:64])
    r = mt.bus.call("signage", "push_test_offer", m.PushTestOfferRequest(display), m.ScreensReply, timeout_ms=5000)
    audit("push-test-offer", display, r.reason if isinstance(r, Failure) else "ok")
    return render_template("signage.html", r=None if isinstance(r, Failure) else r,
                           error=r.reason if isinstance(r, Failure) else "",
                           pushed="" if isinstance(r, Failure) else display)


@bp.post("/network/apply")
def network_apply():
    mt = maint()
    refused = _needs_reauth("/network")
    if refused is not None:
        return refused
    try:
        s = Settings.parse(request.form)
        deadline = mt.network.apply(s)
    except (BadInput, ApplyFailed) as e:
        audit("network", "apply", f"{'refused' if isinstance(e, BadInput) else 'failed'}: {e}")
        return render_template("network.html", current=mt.network.applier.current(), machine=mt.network.machine,
                               iface=mt.cfg.network_interface, confirm_s=mt.cfg.network_confirm_s,
                               error=str(e)), 400 if isinstance(e, BadInput) else 503
    audit("network", s.mode, f"applied; rolls back at {time.strftime('%H:%M:%S', time.gmtime(deadline))} UTC unless confirmed")
    return redirect(url_for("pages.network"))


@bp.post("/network/confirm")
def network_confirm():
    ok = maint().network.confirm()
    audit("network", "confirm", "ok" if ok else "refused: nothing pending (or too late: it was rolled back)")
    if not ok:
        return fail(409, "Nothing to confirm: no change is pending, or it was already rolled back.")
    return redirect(url_for("pages.network"))


@bp.post("/logs/diagnostics")
def diagnostics():
    mt = maint()
    try:
        journal = read(LogQuery(limit=5000), mt.cfg.journalctl, mt.cfg.journal_directory)
    except Exception as e:
        journal = []
        audit("diagnostics", "journal", f"journal not answering: {e}")
    st = mt.bus.call("updater", "status", EMPTY, m.UpdateStatus)
    mo = mt.bus.call("trust", "models", EMPTY, m.ModelsReply)
    try:
        config = mt.paths.config_file.read_text()
    except OSError as e:
        config = f"(config not readable: {e})"
    parts = {
        "health.json": json.dumps(health_rows(), indent=1, default=str),
        "versions.json": json.dumps({"updater": m.to_builtins(st) if not isinstance(st, Failure) else st.reason,
                                     "models": m.to_builtins(mo) if not isinstance(mo, Failure) else mo.reason},
                                    indent=1, default=str),
        "endcap.toml": redact(config),
    }
    path = write_diagnostics(mt.diag_dir, mt.clock(), journal=journal, parts=parts)
    audit("diagnostics", path.name)
    return redirect(url_for("actions.download", file=path.name))


@bp.get("/logs/download")
def download():
    mt = maint()
    name = request.args.get("file", "")
    try:
        path = diagnostic_path(mt.diag_dir, name)
    except BadInput as e:
        return fail(400, str(e), action="download", target=name[:120])
    if not path.is_file():
        return fail(404, "No such diagnostic archive.")
    audit("download", path.name)
    resp: Response = send_file(path, mimetype="application/gzip", as_attachment=True, download_name=path.name)
    return resp
