#!/usr/bin/python3
"""Writes tests/fixtures/tokenizer/nfc_cases.txt: random strings heavy in what NFC
rewrites (combining marks in every order, Hangul jamo and syllables, precomposed
letters, singletons, composition exclusions), one per line as
`hex(UTF-8 input) TAB hex(NFC of it)`, NFC from Python's unicodedata (Unicode 14, the
version of vene's tables).

    /usr/bin/python3 tools/make_nfc_cases.py > tests/fixtures/tokenizer/nfc_cases.txt
"""
import random
import unicodedata as ud

random.seed(9)
POOLS = [
    [chr(c) for c in range(0x300, 0x370)],                                # combining diacritics
    [chr(c) for c in (0x323, 0x328, 0x31B, 0x345, 0x5B0, 0x5BC, 0x93C, 0x94D, 0x3099, 0x309A, 0x1D165, 0x1D16E)],
    list("aeiouAEIOUcnsyzwgkhCNSYZ") + list("\u00e9\u00e8\u00ea\u00c5\u00f1\u00fc\u1ec7\u01d6"),
    [chr(c) for c in range(0x1100, 0x1113)] + [chr(c) for c in range(0x1161, 0x1176)] +
    [chr(c) for c in range(0x11A8, 0x11C3)] + ["\uac00", "\uac01", "\ud7a3", "\ub098"],
    ["\u212b", "\u2126", "\u212a", "\u0958", "\u0344", "\u0f73", "\u2adc", "\u1f71", "\u0387", "\u037e",
     "\u0390", "\u03ac", "\u1e9b", "\u0cc7", "\u0cd5", "\u0b47", "\u0b3e", "\u0bc6", "\u0bbe", "\u30ab", "\u3099"],
    list(" .,1\n") + ["\U0001F600", "\u4e2d", "\u0430", "\u05d0"],
]


def sample():
    n = random.randint(1, 12)
    return "".join(random.choice(random.choice(POOLS)) for _ in range(n))


seen = set()
while len(seen) < 400:
    s = sample()
    if s in seen:
        continue
    seen.add(s)
    print(s.encode().hex() + "\t" + ud.normalize("NFC", s).encode().hex())
