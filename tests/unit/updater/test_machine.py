from endcap.updater import machine as mc


def run(s, *events, timeout=60.0):
    acts = []
    for e in events:
        s, a = mc.step(s, e, confirm_timeout_s=timeout)
        acts += a
    return s, acts


def kinds(acts):
    return [type(a).__name__ for a in acts]


def installed_on_a():
    s, _ = run(mc.State(), mc.Started("A", 0.0), mc.CheckNow(), mc.Offered("1.1.0", 2), mc.Fetched("/b.raucb"),
               mc.Verified("/b.raucb"), mc.Installed())
    return s


def test_happy_path_actions_in_order():
    s, acts = run(mc.State(), mc.Started("A", 0.0), mc.CheckNow(), mc.Offered("1.1.0", 2), mc.Fetched("/b"),
                  mc.Verified("/b"))
    assert [a for a in acts if isinstance(a, (mc.Poll, mc.Download, mc.Verify, mc.Install))] == [
        mc.Poll(), mc.Download("1.1.0"), mc.Verify("/b", "1.1.0", 2), mc.Install("/b")]
    s, acts = run(s, mc.Installed())
    assert s.phase == mc.REBOOTING and s.pending == mc.Pending(version="1.1.0", epoch=2, from_slot="A")
    assert kinds(acts)[0] == "Persist"  # persisted before anything else runs


def test_reboot_waits_for_window():
    s = installed_on_a()
    s, acts = run(s, mc.Tick(10.0, in_window=False))
    assert "Reboot" not in kinds(acts)
    s, acts = run(s, mc.Tick(20.0, in_window=True))
    assert kinds(acts) == ["Persist", "Reboot"] and s.pending.rebooted
    s, acts = run(s, mc.Tick(30.0, in_window=True))
    assert acts == []  # once


def test_new_slot_healthy_commits_then_raises_floor():
    s, _ = run(installed_on_a(), mc.Tick(1.0, True))
    s, _ = run(s, mc.Started("B", 100.0))
    assert s.phase == mc.CONFIRMING and s.pending.deadline == 160.0
    s, acts = run(s, mc.HealthReport(False, "pos: down"))
    assert acts == [] and s.phase == mc.CONFIRMING
    s, acts = run(s, mc.HealthReport(True))
    assert kinds(acts)[:3] == ["MarkGood", "RaiseFloor", "Record"]
    assert mc.RaiseFloor(2, "1.1.0") in acts and s.phase == mc.IDLE and s.pending is None


def test_confirm_timeout_marks_bad_with_reason_and_reboots():
    s, _ = run(installed_on_a(), mc.Tick(1.0, True), mc.Started("B", 100.0), mc.HealthReport(False, "pos: down"))
    s, acts = run(s, mc.Tick(159.0, False))
    assert acts == []
    s, acts = run(s, mc.Tick(160.0, False))  # rollback ignores the window
    assert kinds(acts) == ["MarkBad", "Record", "Persist", "Publish", "Reboot"]
    assert "MarkGood" not in kinds(acts) and "RaiseFloor" not in kinds(acts)
    assert "pos: down" in s.rollback_reason
    s, acts = run(s, mc.Started("A", 200.0))
    assert s.phase == mc.IDLE and s.pending is None and s.last_result == "rolled-back"
    assert "Record" not in kinds(acts)  # recorded once, before the reboot


def test_new_slot_never_came_up_is_a_rollback():
    s, _ = run(installed_on_a(), mc.Tick(1.0, True))
    s, acts = run(s, mc.Started("A", 50.0))
    assert s.last_result == "rolled-back" and "did not come up" in s.rollback_reason
    assert mc.Record("1.1.0", "rolled-back", s.rollback_reason) in acts


def test_restart_before_reboot_keeps_waiting():
    s, _ = run(installed_on_a(), mc.Started("A", 5.0))
    assert s.phase == mc.REBOOTING and s.pending is not None


def test_refusal_records_and_clears():
    s, acts = run(mc.State(), mc.Started("A", 0.0), mc.LocalBundle("/b", "0.9.0", 0),
                  mc.StepFailed("[downgrade] older", refused=True))
    assert s.phase == mc.FAILED and s.pending is None and mc.Record("0.9.0", "refused", "[downgrade] older") in acts
    s, acts = run(s, mc.CheckNow())
    assert s.phase == mc.CHECKING  # failed behaves like idle


def test_busy_ignores_new_requests():
    s = installed_on_a()
    assert mc.step(s, mc.CheckNow(), confirm_timeout_s=1)[1] == []
    assert mc.step(s, mc.LocalBundle("/x", "2.0.0", 0), confirm_timeout_s=1)[1] == []


def test_window():
    assert mc.in_window("", 0)
    assert mc.in_window("02:00-05:00", 150) and not mc.in_window("02:00-05:00", 300)
    assert mc.in_window("23:00-01:00", 10) and mc.in_window("23:00-01:00", 23 * 60) and not mc.in_window("23:00-01:00", 120)


def test_install_is_persisted_before_it_starts():
    s, _ = run(mc.State(), mc.Started("A", 0.0), mc.CheckNow(), mc.Offered("1.1.0", 2), mc.Fetched("/b"))
    s, acts = run(s, mc.Verified("/b"))
    assert kinds(acts)[:2] == ["Persist", "Install"] and s.phase == mc.INSTALLING and s.target == "1.1.0"


def test_nothing_offered_says_why():
    s, _ = run(mc.State(), mc.Started("A", 0.0), mc.CheckNow())
    assert run(s, mc.Offered(None))[0].message == "up to date"
    s2, acts = run(s, mc.Offered(None, note="ring offers 1.1.0, which was rolled-back here"))
    assert s2.phase == mc.IDLE and "rolled-back" in s2.message and kinds(acts) == ["Publish"]
