"""Generated passwords: their length, their classes, and what they avoid."""
import pytest

from jitad.vault.passwords import CLASSES, password_generate


@pytest.mark.parametrize("classes", [("upper", "lower", "digit"), ("upper", "lower", "digit", "symbol"), ("digit", "symbol", "lower")])
def test_every_class_asked_for_appears_and_no_other(classes):
    allowed = "".join(CLASSES[c] for c in classes)
    for _ in range(200):
        password = password_generate(length=16, classes=classes)
        assert len(password) == 16 and set(password) <= set(allowed)
        assert all(set(password) & set(CLASSES[c]) for c in classes)


def test_the_account_name_is_never_part_of_it():
    for _ in range(300):
        assert "abc" not in password_generate(length=40, classes=("lower",), avoid="ABC").lower()


@pytest.mark.parametrize(("length", "classes", "message"), [
    (2, ("upper", "lower", "digit"), "cannot hold one of each"),
    (16, ("upper", "emoji"), "not \\['emoji'\\]"),
    (16, (), "not none"),
])
def test_impossible_asks_are_refused(length, classes, message):
    with pytest.raises(ValueError, match=message):
        password_generate(length=length, classes=classes)
