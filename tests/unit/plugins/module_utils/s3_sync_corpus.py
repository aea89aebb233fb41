"""Hostile (and harmless-but-odd) S3 keys with the verdict s3_sync must give each.

``CORPUS`` is a list of ``(key below the prefix as bytes, expected reason fragment or None)``.
None means the key must be accepted. Shared by the unit tests and the integration tests (which
upload the subset a server can store and check the verdicts survive the round trip).
"""

OK = None

_HAND_PICKED = [
    # traversal
    (b"..", "'..' path segment"),
    (b"../etc/passwd", "'..' path segment"),
    (b"a/../../etc/passwd", "'..' path segment"),
    (b"a/..", "'..' path segment"),
    (b"a/../b", "'..' path segment"),
    (b"../", "'..' path segment"),
    (b".", "'.' path segment"),
    (b"./a", "'.' path segment"),
    (b"a/./b", "'.' path segment"),
    (b"a/.", "'.' path segment"),
    (b"./", "'.' path segment"),
    (b"a/b/../../..", "'..' path segment"),
    # absolute / empty segments
    (b"/etc/passwd", "absolute path"),
    (b"/", "absolute path"),
    (b"//", "absolute path"),
    (b"/a/", "absolute path"),
    (b"a//b", "empty path segment"),
    (b"a///", "empty path segment"),
    (b"a//", "empty path segment"),
    (b"a/b//c", "empty path segment"),
    # encodings that must NOT be decoded a second time: harmless literal names
    (b"%2e%2e/x", OK),
    (b"%2E%2E%2Fetc%2Fpasswd", OK),
    (b"..%2f..%2fetc", OK),
    (b"a%00b", OK),
    (b"..\\..\\windows\\system32", OK),
    (b"a\\b", OK),
    # dots that are names, not segments
    (b"...", OK),
    (b".../x", OK),
    (b"..a", OK),
    (b"a..", OK),
    (b".hidden", OK),
    (b"a/.hidden/b", OK),
    (b"a/...", OK),
    (b". /x", OK),
    (b".. /x", OK),
    (b" ..", OK),
    # ordinary names with shell/glob characters
    (b"$HOME/x", OK),
    (b"~root/x", OK),
    (b"a b/c d", OK),
    (b"*", OK),
    (b"?", OK),
    (b"[abc]", OK),
    (b"-rf", OK),
    (b"a:b", OK),
    (b"a;rm -rf /", OK),
    (b"`id`", OK),
    (b"'\"", OK),
    (b".cvmfscatalog", OK),
    (b"sub/.cvmfsdirtab", OK),
    (b"dir/", OK),
    (b"", OK),  # the prefix's own directory marker
    # Unicode: valid UTF-8 is fine, including look-alikes
    (u"caf\u00e9/na\u00efve".encode("utf-8"), OK),
    (u"cafe\u0301".encode("utf-8"), OK),
    (u"\u2024\u2024/x".encode("utf-8"), OK),      # one-dot leaders, not dots
    (u"\uff0e\uff0e/x".encode("utf-8"), OK),      # fullwidth full stops
    (u"a\u2215b".encode("utf-8"), OK),            # division slash, not '/'
    (u"\u202eevil".encode("utf-8"), OK),          # RTL override is a format char, not a control
    (u"\U0001f600.txt".encode("utf-8"), OK),
    (u"\ufeffbom".encode("utf-8"), OK),
    # C1 controls encoded as valid UTF-8 are still controls
    (u"a\u0085b".encode("utf-8"), "control character U+0085"),
    (u"a\u009bb".encode("utf-8"), "control character U+009B"),
    # invalid UTF-8
    (b"\xff", "invalid UTF-8"),
    (b"a\xfeb", "invalid UTF-8"),
    (b"\xc0\xaf", "invalid UTF-8"),                 # overlong '/'
    (b"\xc0\xae\xc0\xae/x", "invalid UTF-8"),       # overlong '..'
    (b"\xe0\x80\xaf", "invalid UTF-8"),             # 3-byte overlong '/'
    (b"\xf0\x80\x80\xaf", "invalid UTF-8"),         # 4-byte overlong '/'
    (b"\xed\xa0\x80", "invalid UTF-8"),             # UTF-16 surrogate
    (b"\xed\xbf\xbf", "invalid UTF-8"),
    (b"\xf4\x90\x80\x80", "invalid UTF-8"),         # above U+10FFFF
    (b"\xf8\x88\x80\x80\x80", "invalid UTF-8"),     # 5-byte form
    (b"\xfc\x84\x80\x80\x80\x80", "invalid UTF-8"),  # 6-byte form
    (b"a\x80", "invalid UTF-8"),                    # lone continuation byte
    (b"\xc3", "invalid UTF-8"),                     # truncated sequence
    (b"\xe2\x82", "invalid UTF-8"),
    (b"ok/\xe9t\xe9", "invalid UTF-8"),             # Latin-1 name
    # long names
    (b"a" * 255, OK),
    (b"a" * 256, "longer than 255 bytes"),
    (b"d/" + b"a" * 255 + b"/f", OK),
    (b"d/" + b"a" * 256 + b"/f", "longer than 255 bytes"),
    (u"\u00e9".encode("utf-8") * 127 + b"a", OK),    # 255 bytes
    (u"\u00e9".encode("utf-8") * 128, "longer than 255 bytes"),  # 256 bytes, 128 characters
    (u"\U0001f600".encode("utf-8") * 64, "longer than 255 bytes"),
    ((b"d" * 200 + b"/") * 20 + b"f", "path longer than"),
    # our own staging directory name
    (b".s3sync-staging.1.abcd/x", "reserved"),
    (b".s3sync-staging.", "reserved"),
    (b"sub/.s3sync-staging.1/x", OK),  # only reserved at the top
]


def _generated():
    cases = []
    # every C0 control, DEL and every C1 control, at the start, middle and end of a name
    controls = [chr(c) for c in range(0x00, 0x20)] + [chr(0x7F)] + [chr(c) for c in range(0x80, 0xA0)]
    for index, char in enumerate(controls):
        reason = "control character U+%04X" % ord(char)
        where = index % 3
        name = [char + "x", "x" + char + "y", "x" + char][where]
        cases.append((("dir/" + name).encode("utf-8"), reason))
    for char in ("\x00", "\n", "\r", "\t", "\x1b"):
        cases.append((("a" + char + "/b").encode("utf-8"), "control character U+%04X" % ord(char)))
    # traversal in every position of a 3-segment path, as file and as directory marker
    for bad in ("..", "."):
        for position in range(3):
            parts = ["a", "b", "c"]
            parts[position] = bad
            for suffix in ("", "/"):
                cases.append((("/".join(parts) + suffix).encode("utf-8"), "'%s' path segment" % bad))
    # empty segments in every position
    for position in range(1, 3):
        parts = ["a", "b", "c"]
        parts.insert(position, "")
        cases.append(("/".join(parts).encode("utf-8"), "empty path segment"))
    # every lone byte 0x80..0xff is invalid UTF-8 on its own
    for byte in range(0x80, 0x100, 3):
        cases.append((b"bin/tool" + bytes([byte]), "invalid UTF-8"))
    # segment length boundaries with 1-, 2-, 3- and 4-byte characters
    for char in (u"a", u"\u00e9", u"\u20ac", u"\U0001f600"):
        size = len(char.encode("utf-8"))
        fit = 255 // size
        cases.append(((char * fit).encode("utf-8"), OK))
        cases.append(((char * (fit + 1)).encode("utf-8"), "longer than 255 bytes"))
    return cases


def _unique(cases):
    seen = set()
    for key, verdict in cases:
        if key not in seen:
            seen.add(key)
            yield key, verdict


CORPUS = list(_unique(_HAND_PICKED + _generated()))
