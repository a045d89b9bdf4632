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
    s, _ = run(mc.State(), mc.Started("A", 0.0, "boot1"), mc.CheckNow(), mc.Offered("1.1.0", 2),
               mc.Fetched("/b.raucb"), mc.Verified("/b.raucb", "1.1.0", 2), mc.Installed())
    return s


def commit(s, now=150.0):
    """A healthy report and RAUC's answer to the MarkGood it asks for."""
    s, acts = run(s, mc.HealthReport(True, now=now))
    assert kinds(acts) == ["MarkGood"]
    return run(s, mc.MarkDone("good", True, now))


def test_happy_path_actions_in_order():
    s, acts = run(mc.State(), mc.Started("A", 0.0), mc.CheckNow(), mc.Offered("1.1.0", 2), mc.Fetched("/b"),
                  mc.Verified("/b", "1.1.0", 2))
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
    assert kinds(acts) == ["Persist", "Reboot"] and s.pending.rebooted and s.pending.reboot_boot_id == "boot1"
    s, acts = run(s, mc.Tick(30.0, in_window=True))
    assert acts == []  # once


def test_new_slot_healthy_commits_then_raises_floor():
    s, _ = run(installed_on_a(), mc.Tick(1.0, True))
    s, _ = run(s, mc.Started("B", 100.0, "boot2"))
    assert s.phase == mc.CONFIRMING and s.pending.deadline == 160.0
    s, acts = run(s, mc.HealthReport(False, "pos: down"))
    assert acts == [] and s.phase == mc.CONFIRMING
    s, acts = commit(s)
    assert kinds(acts) == ["Persist", "Record", "Publish", "RaiseFloor"]  # persisted first; floor after RAUC's ok
    assert mc.RaiseFloor(2, "1.1.0") in acts and s.phase == mc.IDLE and s.pending is None


def test_confirm_timeout_marks_bad_with_reason_and_reboots():
    s, _ = run(installed_on_a(), mc.Tick(1.0, True), mc.Started("B", 100.0, "boot2"),
               mc.HealthReport(False, "pos: down"))
    s, acts = run(s, mc.Tick(159.0, False))
    assert acts == []
    s, acts = run(s, mc.Tick(160.0, False))
    assert kinds(acts) == ["Persist", "Record", "Publish", "MarkBad"]
    assert "MarkGood" not in kinds(acts) and "RaiseFloor" not in kinds(acts)
    assert "pos: down" in s.rollback_reason
    s, acts = run(s, mc.MarkDone("bad", True, 160.0), mc.Tick(160.1, False))  # rollback ignores the window
    assert kinds(acts) == ["Persist", "Reboot"] and s.pending.reboot_boot_id == "boot2"
    s, acts = run(s, mc.Started("A", 200.0, "boot3"))
    assert s.phase == mc.IDLE and s.pending is None and s.last_result == "rolled-back"
    assert "Record" not in kinds(acts)  # recorded once, before the reboot
    assert "MarkGood" in kinds(acts)  # GRUB marked A "being tried" on the way back: clear it, or A is skipped next


def test_every_boot_of_the_committed_slot_clears_its_try_flag():
    """GRUB's A/B script sets <slot>_TRY=1 on every boot; without a mark-good the next reboot falls over."""
    s, acts = run(mc.State(), mc.Started("A", 0.0, "boot1"))
    assert kinds(acts) == ["Persist", "MarkGood", "Publish"] and s.phase == mc.IDLE
    s, acts = run(s, mc.MarkDone("good", True, 1.0))
    assert s.phase == mc.IDLE and "RaiseFloor" not in kinds(acts)  # nothing pending: only the flag


def test_new_slot_never_came_up_is_a_rollback():
    s, _ = run(installed_on_a(), mc.Tick(1.0, True))
    s, acts = run(s, mc.Started("A", 50.0, "boot2"))
    assert s.last_result == "rolled-back" and "did not come up" in s.rollback_reason
    assert mc.Record("1.1.0", "rolled-back", s.rollback_reason) in acts
    assert "MarkGood" in kinds(acts) and mc.MarkBad("other") in acts  # the booted slot good, the new one bad
    s, acts = run(s, mc.MarkDone("bad", True, 51.0))
    assert s.phase == mc.IDLE and s.pending is None and not acts


def test_restart_before_reboot_keeps_waiting():
    s, _ = run(installed_on_a(), mc.Started("A", 5.0, "boot1"))
    assert s.phase == mc.REBOOTING and s.pending is not None


def test_restart_after_reboot_issued_same_boot_is_not_a_rollback():
    """Review item 1: the reboot was asked for but never happened (command failed, updater restarted)."""
    s, acts = run(installed_on_a(), mc.Tick(1.0, True))
    assert "Reboot" in kinds(acts) and s.pending.rebooted
    s, acts = run(s, mc.Started("A", 5.0, "boot1"))
    assert s.phase == mc.REBOOTING and s.pending is not None and not s.pending.rebooted
    assert s.last_result == "installed" and "Record" not in kinds(acts)
    s, acts = run(s, mc.Tick(6.0, True))
    assert kinds(acts) == ["Persist", "Reboot"]  # asked again
    s, _ = run(s, mc.Started("B", 60.0, "boot2"))  # and this time it happened
    assert s.phase == mc.CONFIRMING


def test_failed_reboot_command_is_retried_with_backoff():
    s, _ = run(installed_on_a(), mc.Tick(1.0, True))
    s, acts = run(s, mc.RebootFailed("systemctl exited 1", 1.0))
    assert s.phase == mc.REBOOTING and not s.pending.rebooted and "reboot failed" in s.message
    assert kinds(acts)[0] == "Persist"
    assert run(s, mc.Tick(1.0 + mc.RETRY_BASE_S - 1, True))[1] == []
    s, acts = run(s, mc.Tick(1.0 + mc.RETRY_BASE_S, True))
    assert kinds(acts) == ["Persist", "Reboot"]
    s, _ = run(s, mc.RebootFailed("again", 40.0))
    assert s.pending.retry_at == 40.0 + 2 * mc.RETRY_BASE_S and s.pending.attempts == 2


def test_restart_while_confirming_keeps_the_deadline():
    """Review item 2: an updater restart in the same boot must not restart the confirm timer."""
    s, _ = run(installed_on_a(), mc.Tick(1.0, True), mc.Started("B", 100.0, "boot2"))
    assert s.pending.deadline == 160.0
    s, _ = run(s, mc.Started("B", 150.0, "boot2"))
    assert s.phase == mc.CONFIRMING and s.pending.deadline == 160.0
    s, acts = run(s, mc.Tick(160.0, False))
    assert "MarkBad" in kinds(acts)
    s2, _ = run(installed_on_a(), mc.Tick(1.0, True), mc.Started("B", 100.0, "boot2"), mc.Started("B", 150.0, "boot3"))
    assert s2.pending.deadline == 210.0  # a new boot of the new slot: services start again, so does the timer


def test_mark_good_failure_is_retried_then_rolls_back_at_the_deadline():
    """Review item 3: a failing RAUC Mark is an event, not a crash; nothing is committed or raised."""
    s, _ = run(installed_on_a(), mc.Tick(1.0, True), mc.Started("B", 100.0, "boot2"))
    s, acts = run(s, mc.HealthReport(True, now=101.0))
    assert kinds(acts) == ["MarkGood"]
    s, acts = run(s, mc.MarkDone("good", False, 101.0, "[rauc] busy"))
    assert s.phase == mc.CONFIRMING and "RaiseFloor" not in kinds(acts) and "mark good failed" in s.message
    assert run(s, mc.HealthReport(True, now=102.0))[1] == []  # backing off
    assert kinds(run(s, mc.HealthReport(True, now=101.0 + mc.RETRY_BASE_S))[1]) == ["MarkGood"]
    s, acts = run(s, mc.Tick(160.0, False))
    assert "MarkBad" in kinds(acts) and "mark good failed" in s.rollback_reason


def test_rollback_reboot_that_did_not_happen_is_asked_again():
    s, _ = run(installed_on_a(), mc.Tick(1.0, True), mc.Started("B", 100.0, "boot2"), mc.Tick(160.0, False),
               mc.Tick(161.0, False))
    assert s.pending.rollback and s.pending.rebooted
    s, acts = run(s, mc.Started("B", 170.0, "boot2"))  # same boot: not rolled back yet
    assert s.phase == mc.REBOOTING and s.pending is not None and not s.pending.rebooted
    s, acts = run(s, mc.Started("B", 300.0, "boot4"))  # rebooted, but into the bad slot again
    assert s.phase == mc.REBOOTING and "MarkBad" in kinds(acts)
    s, acts = run(s, mc.MarkDone("bad", False, 300.0, "x"), mc.Tick(301.0, False))
    assert "Reboot" in kinds(acts)


def test_refusal_records_and_clears():
    s, acts = run(mc.State(), mc.Started("A", 0.0), mc.LocalBundle("/b"))
    assert mc.Verify("/b", None, None) in acts and s.phase == mc.VERIFYING
    s, acts = run(s, mc.StepFailed("[downgrade] older", refused=True, version="0.9.0"))
    assert s.phase == mc.FAILED and s.pending is None and mc.Record("0.9.0", "refused", "[downgrade] older") in acts
    s2, acts = run(mc.State(), mc.Started("A", 0.0), mc.LocalBundle("/b"), mc.StepFailed("[signature] bad", True))
    assert mc.Record("?", "refused", "[signature] bad") in acts
    s, acts = run(s, mc.CheckNow())
    assert s.phase == mc.CHECKING  # failed behaves like idle


def test_busy_ignores_new_requests():
    s = installed_on_a()
    assert mc.step(s, mc.CheckNow(), confirm_timeout_s=1)[1] == []
    assert mc.step(s, mc.LocalBundle("/x"), confirm_timeout_s=1)[1] == []


def test_window():
    assert mc.in_window("", 0)
    assert mc.in_window("02:00-05:00", 150) and not mc.in_window("02:00-05:00", 300)
    assert mc.in_window("23:00-01:00", 10) and mc.in_window("23:00-01:00", 23 * 60) and not mc.in_window("23:00-01:00", 120)


def test_install_is_persisted_before_it_starts():
    s, _ = run(mc.State(), mc.Started("A", 0.0), mc.CheckNow(), mc.Offered("1.1.0", 2), mc.Fetched("/b"))
    s, acts = run(s, mc.Verified("/b", "1.1.0", 2))
    assert kinds(acts)[:2] == ["Persist", "Install"] and s.phase == mc.INSTALLING and s.target == "1.1.0"


def test_nothing_offered_says_why():
    s, _ = run(mc.State(), mc.Started("A", 0.0), mc.CheckNow())
    assert run(s, mc.Offered(None))[0].message == "up to date"
    s2, acts = run(s, mc.Offered(None, note="ring offers 1.1.0, which was rolled-back here"))
    assert s2.phase == mc.IDLE and "rolled-back" in s2.message and kinds(acts) == ["Publish"]


def test_local_bundle_takes_the_signed_facts_and_the_installed_epoch():
    s, _ = run(mc.State(), mc.Started("A", 0.0), mc.LocalBundle("/up/b"), mc.Verified("/up/b", "1.2.0", 3))
    assert s.phase == mc.INSTALLING and s.target == "1.2.0" and s.target_epoch == 3
    s, _ = run(s, mc.Installed(epoch=4))  # what RAUC recorded for the written slot wins
    assert s.pending.epoch == 4 and s.pending.version == "1.2.0"
