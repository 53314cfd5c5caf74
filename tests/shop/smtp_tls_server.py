#!/usr/bin/env python3
"""smtp_tls_server.py: a small SMTP server for the shop's TLS tests.

Listens on a free loopback port in one of two modes: "smtps" (TLS from the
first byte) or "starttls" (plain until STARTTLS; AUTH and MAIL are refused
before it). Requires AUTH PLAIN or LOGIN with the given user and password
before MAIL. Appends each message it accepts, with what it saw of the
session (TLS or not, the user who logged in), to OUT as one JSON line.
Prints the port on its first line, then serves until killed.

Usage: smtp_tls_server.py MODE CERT KEY USER PASSWORD OUT
"""
import base64
import json
import socket
import ssl
import sys
import threading


def serve_client(conn, mode, context, user, password, out):
    tls = mode == "smtps"
    if tls:
        conn = context.wrap_socket(conn, server_side=True)
    stream = conn.makefile("rwb")
    logged_in = None

    def say(text):
        stream.write(text.encode() + b"\r\n")
        stream.flush()

    def line():
        raw = stream.readline()
        if not raw:
            raise EOFError
        return raw.decode("utf-8", "replace").rstrip("\r\n")

    say("220 tls-test ESMTP")
    mail_from, rcpt = None, []
    try:
        while True:
            cmd = line()
            verb = cmd.split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO"):
                extensions = ["250-tls-test"]
                if not tls:
                    extensions.append("250-STARTTLS")
                if tls:
                    extensions.append("250-AUTH PLAIN LOGIN")
                extensions.append("250 8BITMIME")
                for e in extensions:
                    say(e)
            elif verb == "STARTTLS" and not tls:
                say("220 go ahead")
                stream.close()
                conn = context.wrap_socket(conn, server_side=True)
                stream = conn.makefile("rwb")
                tls = True
            elif verb == "AUTH" and tls:
                parts = cmd.split(" ")
                if parts[1].upper() == "PLAIN":
                    if len(parts) > 2:
                        blob = parts[2]
                    else:
                        say("334 ")
                        blob = line()
                    _, name, secret = base64.b64decode(blob).decode().split("\0")
                else:
                    say("334 VXNlcm5hbWU6")
                    name = base64.b64decode(line()).decode()
                    say("334 UGFzc3dvcmQ6")
                    secret = base64.b64decode(line()).decode()
                if name == user and secret == password:
                    logged_in = name
                    say("235 welcome")
                else:
                    say("535 wrong login")
            elif verb == "MAIL":
                if not tls or logged_in is None:
                    say("530 log in over TLS first")
                    continue
                mail_from, rcpt = cmd, []
                say("250 ok")
            elif verb == "RCPT":
                rcpt.append(cmd)
                say("250 ok")
            elif verb == "DATA":
                say("354 go on")
                body = []
                while True:
                    l = line()
                    if l == ".":
                        break
                    body.append(l)
                with open(out, "a") as f:
                    f.write(json.dumps({"tls": tls, "user": logged_in, "from": mail_from,
                                        "rcpt": rcpt, "message": "\n".join(body)}) + "\n")
                say("250 kept")
            elif verb == "RSET":
                mail_from, rcpt = None, []
                say("250 ok")
            elif verb == "QUIT":
                say("221 bye")
                break
            else:
                say("502 not here")
    except (EOFError, ConnectionError, ssl.SSLError, ValueError):
        pass
    finally:
        conn.close()


def main():
    mode, cert, key, user, password, out = sys.argv[1:7]
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    print(listener.getsockname()[1], flush=True)
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=serve_client,
                         args=(conn, mode, context, user, password, out), daemon=True).start()


if __name__ == "__main__":
    main()
