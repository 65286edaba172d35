"""A real SMTP server (aiosmtpd) for Postern's delivery tests.

Prints "PORT <n>" on stdout once listening. Every accepted message is written to --dir as
<n>.eml with the envelope on top. Behaviour is chosen by flags:
  --tempfail-first N      answer 451 at end of DATA to the first N transactions
  --reject-domain D       answer 550 5.1.1 to RCPT TO addresses at domain D
  --permfail-data         answer 554 at end of DATA to every transaction
  --tls CERT KEY          offer STARTTLS with this certificate, and require it
  --auth USER:PASS        require AUTH (PLAIN/LOGIN) with these credentials
  --stop-after N          after N accepted messages, stop answering: the listener closes (new
                          connections are refused) and open sessions get 421 to every
                          transaction, as a server going down does (SIGUSR1 does the same
                          at any moment)
"""
import argparse
import asyncio
import itertools
import os
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Handler:
    def __init__(self, args):
        self.args = args
        self.tempfails_left = args.tempfail_first
        self.counter = itertools.count(1)
        self.accepted = 0
        self.stopped = False
        self.on_stop = None

    def refuse(self):
        return "421 4.3.2 Service shutting down, closing transmission channel"

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if self.stopped:
            return self.refuse()
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.args.reject_domain and address.lower().endswith("@" + self.args.reject_domain):
            return "550 5.1.1 <%s>: Recipient address rejected: User unknown" % address
        if self.args.greylist_domain and address.lower().endswith("@" + self.args.greylist_domain):
            return "450 4.2.0 <%s>: Recipient address rejected: Greylisted, try again later" % address
        if self.args.too_many_domain and address.lower().endswith("@" + self.args.too_many_domain):
            return "552 5.5.3 Too many recipients"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.args.hang_data:
            await asyncio.sleep(3600)
        if self.stopped:
            return self.refuse()
        if self.tempfails_left > 0:
            self.tempfails_left -= 1
            return "451 4.3.0 Temporary failure, try again later"
        if self.args.permfail_data:
            return "554 5.7.1 Message rejected as spam"
        n = next(self.counter)
        path = os.path.join(self.args.dir, "%06d.eml" % n)
        with open(path + ".tmp", "wb") as f:
            f.write(b"X-Sink-Mail-From: " + envelope.mail_from.encode() + b"\r\n")
            f.write(b"X-Sink-Rcpt-To: " + ", ".join(envelope.rcpt_tos).encode() + b"\r\n")
            f.write(envelope.original_content or envelope.content)
        os.rename(path + ".tmp", path)
        self.accepted += 1
        if self.args.stop_after and self.accepted >= self.args.stop_after and not self.stopped:
            self.stopped = True
            if self.on_stop:
                self.on_stop()
        return "250 2.0.0 OK queued as %d" % n


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dir", required=True)
    p.add_argument("--tempfail-first", type=int, default=0)
    p.add_argument("--reject-domain", default="")
    p.add_argument("--greylist-domain", default="", help="450 to RCPT for this domain")
    p.add_argument("--too-many-domain", default="", help="552 to RCPT for this domain")
    p.add_argument("--permfail-data", action="store_true")
    p.add_argument("--hang-data", action="store_true", help="never answer the end of DATA")
    p.add_argument("--port", type=int, default=0, help="listen here instead of a free port")
    p.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    p.add_argument("--auth", default="")
    p.add_argument("--stop-after", type=int, default=0)
    args = p.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    port = args.port
    if not port:
        import socket
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
    kwargs = {}
    if args.tls:
        import ssl
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(args.tls[0], args.tls[1])
        kwargs.update(tls_context=ctx, require_starttls=True)
    if args.auth:
        user, password = args.auth.split(":", 1)

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = isinstance(auth_data, LoginPassword) and auth_data.login.decode() == user \
                and auth_data.password.decode() == password
            return AuthResult(success=ok, handled=False)  # aiosmtpd sends the 235/535

        kwargs.update(authenticator=authenticator, auth_required=True,
                      auth_require_tls=bool(args.tls))
    handler = Handler(args)
    controller = Controller(handler, hostname="127.0.0.1", port=port, data_size_limit=0, **kwargs)
    controller.start()
    # Runs on the server's own loop, inside the handler: stop listening, keep open sessions
    # (they are refused with 421 from now on).
    handler.on_stop = lambda: controller.server.close()

    def stop_now(*_):
        def go():
            handler.stopped = True
            controller.server.close()
        controller.loop.call_soon_threadsafe(go)

    import signal
    signal.signal(signal.SIGUSR1, stop_now)
    print("PORT %d" % port, flush=True)
    try:
        sys.stdin.read()  # runs until the test closes our stdin (or kills us)
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
