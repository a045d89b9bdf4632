from endcap.updater import grub


def test_fresh_device_boots_a():
    assert grub.boot(grub.initial_env()).slot == "A"


def test_after_install_boots_b_once_then_falls_back_unless_marked_good():
    env = dict(grub.initial_env(), ORDER="B A")  # RAUC set-primary B: B first, B_OK=1, B_TRY=0
    first = grub.boot(env)
    assert first.slot == "B" and first.env["B_TRY"] == "1"
    second = grub.boot(first.env)  # not marked good: B was tried, A takes over
    assert second.slot == "A"
    assert grub.boot(dict(first.env, B_TRY="0")).slot == "B"  # marked good: RAUC reset B_TRY


def test_marked_bad_boots_old_slot():
    assert grub.boot(dict(grub.initial_env(), ORDER="B A", B_OK="0")).slot == "A"


def test_no_good_slot_defaults_to_entry_zero():
    assert grub.boot({"ORDER": "A B", "A_OK": "0", "B_OK": "0"}).slot == "A"


def test_a_new_slot_a_that_never_comes_up_falls_back_to_b():
    # RAUC installed into A from B (set-primary A): A first, A_OK=1, A_TRY=0; B good and confirmed
    env = {"ORDER": "A B", "A_OK": "1", "A_TRY": "0", "B_OK": "1", "B_TRY": "0"}
    first = grub.boot(env)
    assert first.slot == "A" and first.env["A_TRY"] == "1"
    second = grub.boot(first.env)  # A panicked before anything marked it good
    assert second.slot == "B" and second.env["A_TRY"] == "1" and second.env["B_TRY"] == "1"
    assert grub.boot(dict(second.env, B_TRY="0")).slot == "B"  # B confirmed again: A stays skipped


def test_when_every_good_slot_was_tried_the_first_good_one_is_tried_again():
    both_tried = {"ORDER": "B A", "A_OK": "1", "A_TRY": "1", "B_OK": "1", "B_TRY": "1"}
    again = grub.boot(both_tried)
    assert again.slot == "B" and again.env["B_TRY"] == "1" and again.env["A_TRY"] == "0"
    assert grub.boot(again.env).slot == "A"  # B failed again: A is next, not B forever
    only_a_good = {"ORDER": "B A", "A_OK": "1", "A_TRY": "1", "B_OK": "0", "B_TRY": "1"}
    assert grub.boot(only_a_good).slot == "A"


def test_parse_env():
    assert grub.parse_env("ORDER=B A\nA_OK=1\n# comment\n") == {"ORDER": "B A", "A_OK": "1"}
