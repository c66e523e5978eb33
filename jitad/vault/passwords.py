"""Generating passwords: random, of a given length, with at least one character of each class asked for."""
import secrets

from django.views.decorators.debug import sensitive_variables

# No characters that read alike on paper (0/O, 1/l/I) or need quoting in a shell.
CLASSES = {
    "upper": "ABCDEFGHJKLMNPQRSTUVWXYZ",
    "lower": "abcdefghijkmnopqrstuvwxyz",
    "digit": "23456789",
    "symbol": "-_.,:;!?@#%+=*~^",
}


@sensitive_variables("chars", "password")
def password_generate(*, length: int, classes=tuple(CLASSES), avoid: str = "") -> str:
    """A random password of ``length`` characters drawn from ``classes``, with at least one of each.

    AD's complexity rule refuses a password that contains the account name (three characters
    or more): ``avoid`` is never part of the result. ValueError for an unknown class, or a
    length shorter than the number of classes.
    """
    unknown = [c for c in classes if c not in CLASSES]
    if unknown or not classes:
        raise ValueError(f"password classes are {', '.join(CLASSES)}; not {unknown or 'none'}")
    sets = [CLASSES[c] for c in dict.fromkeys(classes)]
    if length < len(sets):
        raise ValueError(f"a password of {length} characters cannot hold one of each of {len(sets)} classes")
    alphabet = "".join(sets)
    while True:
        chars = [secrets.choice(s) for s in sets] + [secrets.choice(alphabet) for _ in range(length - len(sets))]
        secrets.SystemRandom().shuffle(chars)
        password = "".join(chars)
        if len(avoid) < 3 or avoid.lower() not in password.lower():
            return password
