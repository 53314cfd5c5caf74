#!/usr/bin/env python3
"""check_mail.py: the shop's mail spool, read with Python's standard mail
parser (the email package, policy default), holds messages a mail program
shows as meant.

usage: check_mail.py SPOOL NAME COUNT
  - COUNT messages; no defect on any message, part or header;
  - 7-bit clean, header lines within 78 characters (but the Message-ID's,
    which cannot be folded), body lines within 76;
  - To decodes to NAME (RFC 2047), Subject names the order by a reference
    (XXXX-XXXX) and decodes cleanly; references differ between orders;
  - multipart/alternative: text/plain, then text/html, both UTF-8;
  - the text greets NAME, states amounts with their currency, and holds no
    internal code (a word like payment_declined); the HTML parses and says
    the same.
Prints one line per problem; exits 1 if there was any.
"""
import email
import email.header
import email.policy
import html.parser
import re
import sys


def messages(path):
    """The spool's messages as bytes: each starts with a 'From ' line."""
    with open(path, "rb") as f:
        data = f.read()
    chunks = re.split(rb"(?m)^From shop@tidings\.local .*\n", data)
    return [c for c in chunks if c.strip()]


class Html(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.text = []

    def handle_data(self, data):
        self.text.append(data)


def main(path, name, count):
    problems = []
    refs = {}
    raw = messages(path)
    if len(raw) != count:
        problems.append(f"{len(raw)} messages, not {count}")
    for i, data in enumerate(raw):
        where = f"message {i + 1}"
        # the spool's own length line and LF line ends: a message as the spool keeps it
        data = re.sub(rb"^X-Spool-Length: \d+\n", b"", data)
        try:
            data.decode("ascii")
        except UnicodeDecodeError:
            problems.append(f"{where}: not 7-bit clean")
        head, _, body = data.partition(b"\n\n")
        for line in head.split(b"\n"):
            if len(line) > 78 and not line.startswith(b"Message-ID: "):  # an id does not fold
                problems.append(f"{where}: a header line of {len(line)} characters: {line[:40]!r}")
        for line in body.split(b"\n"):
            if len(line) > 76:
                problems.append(f"{where}: a body line of {len(line)} characters")
        msg = email.message_from_bytes(data, policy=email.policy.default)
        for part in msg.walk():
            if part.defects:
                problems.append(f"{where}: defects {part.defects}")
            for key, value in part.items():
                if getattr(value, "defects", None):
                    problems.append(f"{where}: header {key}: defects {value.defects}")
        # The display name through the package's RFC 2047 decoder: its address
        # parser keeps the folding space between two encoded-words of one
        # phrase, which RFC 2047 (6.2) says to drop (and GMime does).
        to_raw = re.search(rb"(?m)^To: .*(?:\n[ \t].*)*", data).group().decode()[4:]
        to_raw = re.sub(r"\n[ \t]", " ", to_raw)
        decoded = str(email.header.make_header(email.header.decode_header(to_raw)))
        display = decoded.rsplit(" <", 1)[0]
        if display != name:
            problems.append(f"{where}: To reads {display!r}, not {name!r}")
        if msg["To"].addresses[0].addr_spec != "zoe@example.com":
            problems.append(f"{where}: To is not addressed to zoe@example.com")
        subject = str(msg["Subject"])
        ref = re.search(r"\b[0-9A-F]{4}-[0-9A-F]{4}\b", subject)
        if not ref:
            problems.append(f"{where}: no order reference in the subject {subject!r}")
        else:
            refs.setdefault(msg["X-Order-Id"], set()).add(ref.group())
        if msg.get_content_type() != "multipart/alternative":
            problems.append(f"{where}: {msg.get_content_type()}, not multipart/alternative")
            continue
        parts = list(msg.iter_parts())
        if [p.get_content_type() for p in parts] != ["text/plain", "text/html"]:
            problems.append(f"{where}: parts {[p.get_content_type() for p in parts]}")
            continue
        text = parts[0].get_content()
        page = Html()
        page.feed(parts[1].get_content())
        page.close()
        shown = " ".join("".join(page.text).split())
        for what, content in (("text", text), ("html", shown)):
            if f"Hello {name}," not in content:
                problems.append(f"{where}: the {what} does not greet {name}")
            if not re.search(r"\b[A-Z]{3} \d{1,3}(,\d{3})*(\.\d+)?\b", content):
                problems.append(f"{where}: the {what} states no amount with its currency")
            code = re.search(r"\b[a-z]+_[a-z_]+\b", content)
            if code:
                problems.append(f"{where}: the {what} holds the internal code {code.group()!r}")
            if ref and ref.group() not in content:
                problems.append(f"{where}: the {what} does not name the order {ref.group()}")
    every = [r for rs in refs.values() for r in rs]
    if any(len(rs) != 1 for rs in refs.values()) or len(set(every)) != len(every):
        problems.append(f"references do not tell the orders apart: {refs}")
    for p in problems:
        print("FAIL:", p)
    print(f"{len(raw)} messages, {len(refs)} orders: {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
