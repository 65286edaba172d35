"""Local stand-ins for the provider HTTP APIs that have no offline peer, for Postern's provider
conformance suite. Each follows the provider's documented wire format: it checks the request
the way the real API does (path, method, auth header, content type, required fields) and
answers in the documented success and error shapes.

    provider_fakes.py --api postmark|mailgun|sendgrid|twilio|webhook|social|ses --secret S
                      [--domain D] [--account-sid SID] [--account HANDLE] [--access-key-id K]

Prints "PORT <n>" once listening; runs until stdin closes. Control endpoints:
  POST /_fake/mode   {"mode": "ok" | "suspended" | "throttle" | "hang" | "error500"}
  POST /_fake/sent   {"add": N}: N sends made with the account outside Postern (SES
                     SentLast24Hours counts them)
  GET  /_fake/requests   every API request seen, normalised:
       {"path", "status", "recipients", "subject", "text", "idempotency_key", "signature_valid"}

Recipients the provider refuses one by one: Postmark's inactive (suppressed) addresses and
SES's unverified ones are those at @bounce.test; SendGrid and Mailgun refuse addresses that
are not valid; Twilio's magic test number +15005550001 is an invalid 'To' (error 21211); the
webhook receiver rejects @bounce.test recipients in its 2xx answer.
"""
import argparse
import base64
import email
import email.policy
import hashlib
import hmac
import json
import re
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

ARGS = None
STATE = {"mode": "ok", "requests": [], "idempotency": {}, "sent": 0}
LOCK = threading.Lock()
VALID_ADDRESS = re.compile(r"^[^@\s<>,]+@[^@\s<>,]+\.[^@\s<>,]+$")


def addr_of(s):
    """'Name <a@b>' -> 'a@b'."""
    m = re.search(r"<([^>]*)>", s)
    return (m.group(1) if m else s).strip()


def split_list(s):
    return [addr_of(x) for x in (s or "").split(",") if x.strip()]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    # --- plumbing -------------------------------------------------------------------------

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def reply(self, status, obj=None, headers=None, raw=None, ctype="application/json"):
        data = raw if raw is not None else (b"" if obj is None else json.dumps(obj).encode())
        self.send_response(status)
        if data or obj is not None:
            self.send_header("Content-Type", ctype)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def record(self, status, **kw):
        entry = {"path": self.path, "method": self.command, "status": status}
        entry.update(kw)
        with LOCK:
            STATE["requests"].append(entry)

    def basic_auth(self):
        h = self.headers.get("Authorization", "")
        if not h.startswith("Basic "):
            return None, None
        try:
            user, _, pw = base64.b64decode(h[6:]).decode().partition(":")
        except Exception:
            return None, None
        return user, pw

    def bearer(self):
        h = self.headers.get("Authorization", "")
        return h[7:] if h.startswith("Bearer ") else None

    def mode_gate(self):
        """The modes that apply whatever the API: hang (accept, never answer)."""
        if STATE["mode"] == "hang":
            time.sleep(60)
            return True
        return False

    def do_GET(self):
        if self.path == "/_fake/requests":
            with LOCK:
                return self.reply(200, STATE["requests"])
        if self.mode_gate():
            return
        getattr(self, "get_" + ARGS.api)()

    def do_POST(self):
        if self.path == "/_fake/mode":
            STATE["mode"] = json.loads(self.body())["mode"]
            return self.reply(200, {"mode": STATE["mode"]})
        if self.path == "/_fake/sent":
            with LOCK:
                STATE["sent"] += int(json.loads(self.body())["add"])
                return self.reply(200, {"sent": STATE["sent"]})
        body = self.body()
        if self.mode_gate():
            return
        getattr(self, "post_" + ARGS.api)(body)

    # --- Postmark: POST /email, X-Postmark-Server-Token, JSON ------------------------------

    def postmark_auth(self):
        token = self.headers.get("X-Postmark-Server-Token")
        if token != ARGS.secret:
            msg = ("No Account or Server API tokens were supplied in the HTTP headers. Please add "
                   "a header for either X-Postmark-Server-Token or X-Postmark-Account-Token."
                   if token is None else "Request does not contain a valid Server token.")
            self.reply(401, {"ErrorCode": 10, "Message": msg})
            return False
        return True

    def get_postmark(self):
        if self.path != "/server":
            return self.reply(404, {"ErrorCode": 0, "Message": "Not found"})
        if self.postmark_auth():
            self.reply(200, {"ID": 1, "Name": "Fake server", "DeliveryType": "Live"})

    def post_postmark(self, body):
        if self.path != "/email":
            return self.reply(404, {"ErrorCode": 0, "Message": "Not found"})
        if not self.postmark_auth():
            return self.record(401)
        if not self.headers.get("Content-Type", "").startswith("application/json"):
            self.record(415)
            return self.reply(415, {"ErrorCode": 409, "Message": "JSON required"})
        try:
            req = json.loads(body)
        except ValueError:
            self.record(400)
            return self.reply(422, {"ErrorCode": 402, "Message": "Invalid JSON"})
        mode = STATE["mode"]
        if mode == "suspended":
            self.record(422)
            return self.reply(422, {"ErrorCode": 413, "Message": "Account May Not Send: this account is not allowed to send."})
        if mode == "throttle":
            self.record(429)
            return self.reply(429, {"ErrorCode": 429, "Message": "Rate limit exceeded."})
        if mode == "error500":
            self.record(500)
            return self.reply(500, {"ErrorCode": 0, "Message": "Internal server error"})
        rcpts = split_list(req.get("To")) + split_list(req.get("Cc")) + split_list(req.get("Bcc"))
        if not req.get("From") or not req.get("To") or not (req.get("TextBody") or req.get("HtmlBody")):
            self.record(422, recipients=rcpts)
            return self.reply(422, {"ErrorCode": 300, "Message": "Invalid email request: From, To and a body are required."})
        inactive = [r for r in rcpts if r.lower().endswith("@bounce.test")]
        if inactive:
            self.record(422, recipients=rcpts)
            return self.reply(422, {"ErrorCode": 406, "Message": (
                "You tried to send to recipient(s) that have been marked as inactive. Found "
                "inactive addresses: %s. Inactive recipients are ones that have generated a hard "
                "bounce, a spam complaint, or a manual suppression." % ", ".join(inactive))})
        headers = {h["Name"]: h["Value"] for h in req.get("Headers", [])}
        self.record(200, recipients=rcpts, subject=req.get("Subject"), text=req.get("TextBody"),
                    html=req.get("HtmlBody"), headers=headers, metadata=req.get("Metadata"),
                    message_stream=req.get("MessageStream"))
        self.reply(200, {"To": req["To"], "SubmittedAt": "2026-01-01T00:00:00Z",
                         "MessageID": str(uuid.uuid4()), "ErrorCode": 0, "Message": "OK"})

    # --- Mailgun: POST /v3/{domain}/messages.mime, basic api:KEY, multipart ----------------

    def mailgun_auth(self):
        user, pw = self.basic_auth()
        if user != "api" or pw != ARGS.secret:
            self.reply(401, raw=b"Forbidden", ctype="text/plain")
            return False
        return True

    def get_mailgun(self):
        if self.path != "/v3/domains/%s" % ARGS.domain:
            return self.reply(404, {"message": "Domain not found"})
        if self.mailgun_auth():
            self.reply(200, {"domain": {"name": ARGS.domain, "state": "active"}})

    def post_mailgun(self, body):
        m = re.fullmatch(r"/v3/([^/]+)/messages\.mime", self.path)
        if not m:
            return self.reply(404, {"message": "Not found"})
        if not self.mailgun_auth():
            return self.record(401)
        if m.group(1) != ARGS.domain:
            self.record(404)
            return self.reply(404, {"message": "Domain not found: %s" % m.group(1)})
        ctype = self.headers.get("Content-Type", "")
        if not ctype.startswith("multipart/form-data"):
            self.record(400)
            return self.reply(400, {"message": "'message' parameter is missing"})
        parsed = email.message_from_bytes(
            b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + body, policy=email.policy.HTTP)
        fields = {}
        for part in parsed.iter_parts():
            name = part.get_param("name", header="content-disposition")
            fields.setdefault(name, []).append(part)
        to = [p.get_payload(decode=True).decode() for p in fields.get("to", [])]
        rcpts = [a for t in to for a in split_list(t)]
        if not to:
            self.record(400)
            return self.reply(400, {"message": "'to' parameter is missing"})
        if "message" not in fields or fields["message"][0].get_filename() is None:
            self.record(400, recipients=rcpts)
            return self.reply(400, {"message": "'message' parameter is missing"})
        mode = STATE["mode"]
        if mode == "suspended":
            self.record(403, recipients=rcpts)
            return self.reply(403, {"message": "Domain %s is not allowed to send: account disabled" % ARGS.domain})
        if mode == "throttle":
            self.record(429, recipients=rcpts)
            return self.reply(429, {"message": "Too many requests"})
        if mode == "error500":
            self.record(500, recipients=rcpts)
            return self.reply(500, {"message": "Internal error"})
        if any(not VALID_ADDRESS.match(r) for r in rcpts):
            self.record(400, recipients=rcpts)
            return self.reply(400, {"message": "'to' parameter is not a valid address. please check documentation"})
        part = fields["message"][0]
        if part.get_content_type() == "message/rfc822":  # already parsed as a nested message
            mime = part.get_payload(0)
        else:
            mime = email.message_from_bytes(part.get_payload(decode=True), policy=email.policy.default)
        text = mime.get_body(("plain",))
        variables = {k[2:]: v[0].get_payload(decode=True).decode() for k, v in fields.items() if k and k.startswith("v:")}
        self.record(200, recipients=rcpts, subject=str(mime["Subject"]),
                    text=text.get_content() if text else None, variables=variables)
        self.reply(200, {"id": "<%s@%s>" % (uuid.uuid4().hex, ARGS.domain), "message": "Queued. Thank you."})

    # --- SendGrid: POST /v3/mail/send, Bearer, JSON personalizations -----------------------

    def sendgrid_auth(self):
        if self.bearer() != ARGS.secret:
            self.reply(401, {"errors": [{"message": "The provided authorization grant is invalid, expired, or revoked", "field": None, "help": None}]})
            return False
        return True

    def get_sendgrid(self):
        if self.path != "/v3/scopes":
            return self.reply(404, {"errors": [{"message": "not found", "field": None}]})
        if self.sendgrid_auth():
            self.reply(200, {"scopes": ["mail.send", "user.profile.read"]})

    def post_sendgrid(self, body):
        if self.path != "/v3/mail/send":
            return self.reply(404, {"errors": [{"message": "not found", "field": None}]})
        if not self.sendgrid_auth():
            return self.record(401)
        if not self.headers.get("Content-Type", "").startswith("application/json"):
            self.record(415)
            return self.reply(415, {"errors": [{"message": "Content-Type should be application/json.", "field": None}]})
        req = json.loads(body)
        mode = STATE["mode"]
        if mode == "suspended":
            self.record(401)
            return self.reply(401, {"errors": [{"message": "Maximum credits exceeded", "field": None, "help": None}]})
        if mode == "throttle":
            self.record(429)
            return self.reply(429, {"errors": [{"message": "too many requests", "field": None}]})
        if mode == "error500":
            self.record(500)
            return self.reply(500, {"errors": [{"message": "internal error", "field": None}]})
        errors, rcpts = [], []
        pers = req.get("personalizations") or []
        if not pers:
            errors.append({"message": "The personalizations field is required and must have at least one personalization.", "field": "personalizations"})
        for i, p in enumerate(pers):
            if not p.get("to"):
                errors.append({"message": "The to array is required for all personalization objects, and must have at least one email object with a valid email address.", "field": "personalizations.%d.to" % i})
            for kind in ("to", "cc", "bcc"):
                for j, e in enumerate(p.get(kind) or []):
                    rcpts.append(e.get("email"))
                    if not VALID_ADDRESS.match(e.get("email") or ""):
                        errors.append({"message": "Does not contain a valid address.", "field": "personalizations.%d.%s.%d.email" % (i, kind, j)})
        if not (req.get("from") or {}).get("email"):
            errors.append({"message": "The from object must be provided for every email send.", "field": "from"})
        if not req.get("subject"):
            errors.append({"message": "The subject is required.", "field": "subject"})
        content = req.get("content") or []
        if not content or any(not c.get("value") for c in content):
            errors.append({"message": "The content value must be a string at least one character in length.", "field": "content.0.value"})
        elif any(c.get("type") == "text/plain" for c in content) and content[0].get("type") != "text/plain":
            errors.append({"message": "If present, text/plain content must be first.", "field": "content.0.type"})
        if errors:
            self.record(400, recipients=rcpts)
            return self.reply(400, {"errors": errors})
        text = next((c["value"] for c in content if c["type"] == "text/plain"), None)
        self.record(202, recipients=rcpts, subject=req["subject"], text=text,
                    headers=req.get("headers"), custom_args=pers[0].get("custom_args"))
        self.reply(202, headers={"X-Message-Id": uuid.uuid4().hex[:22]})

    # --- Twilio: POST /2010-04-01/Accounts/{Sid}/Messages.json, basic Sid:Token, form ------

    def twilio_error(self, status, code, message):
        self.reply(status, {"code": code, "message": message,
                            "more_info": "https://www.twilio.com/docs/errors/%d" % code, "status": status})

    def twilio_auth(self):
        user, pw = self.basic_auth()
        if user != ARGS.account_sid or pw != ARGS.secret:
            self.twilio_error(401, 20003, "Authenticate")
            return False
        return True

    def get_twilio(self):
        if self.path != "/2010-04-01/Accounts/%s.json" % ARGS.account_sid:
            return self.twilio_error(404, 20404, "The requested resource was not found")
        if self.twilio_auth():
            status = "suspended" if STATE["mode"] == "suspended" else "active"
            self.reply(200, {"sid": ARGS.account_sid, "status": status, "type": "Full"})

    def post_twilio(self, body):
        if self.path != "/2010-04-01/Accounts/%s/Messages.json" % ARGS.account_sid:
            return self.twilio_error(404, 20404, "The requested resource was not found")
        if not self.twilio_auth():
            return self.record(401)
        if not self.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
            self.record(400)
            return self.twilio_error(400, 21602, "Message body is required.")
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        to = form.get("To")
        mode = STATE["mode"]
        if mode == "suspended":
            self.record(401, recipients=[to])
            return self.twilio_error(401, 20005, "Account not active")
        if mode == "throttle":
            self.record(429, recipients=[to])
            return self.twilio_error(429, 20429, "Too Many Requests")
        if mode == "error500":
            self.record(500, recipients=[to])
            return self.twilio_error(500, 20500, "Internal Server Error")
        if not to:
            self.record(400)
            return self.twilio_error(400, 21604, "A 'To' phone number is required.")
        if not (form.get("From") or form.get("MessagingServiceSid")):
            self.record(400, recipients=[to])
            return self.twilio_error(400, 21603, "A 'From' phone number is required.")
        if not form.get("Body"):
            self.record(400, recipients=[to])
            return self.twilio_error(400, 21602, "Message body is required.")
        if to == "+15005550001" or not re.fullmatch(r"\+[1-9]\d{6,14}", to):
            self.record(400, recipients=[to])
            return self.twilio_error(400, 21211, "The 'To' number %s is not a valid phone number." % to)
        sid = "SM" + uuid.uuid4().hex
        self.record(201, recipients=[to], text=form["Body"], sender=form.get("From"),
                    messaging_service=form.get("MessagingServiceSid"))
        self.reply(201, {"sid": sid, "account_sid": ARGS.account_sid, "to": to, "from": form.get("From"),
                         "body": form["Body"], "status": "queued", "num_segments": "1"})

    # --- Webhook receiver: verifies Postern-Signature -----------------------------------------

    def post_webhook(self, body):
        sig = self.headers.get("Postern-Signature", "")
        parts = dict(p.split("=", 1) for p in sig.split(",") if "=" in p)
        valid = False
        if "t" in parts and "v1" in parts:
            expected = hmac.new(ARGS.secret.encode(), parts["t"].encode() + b"." + body, hashlib.sha256).hexdigest()
            fresh = abs(time.time() - int(parts["t"])) < 300
            valid = fresh and hmac.compare_digest(expected, parts["v1"])
        if not valid:
            self.record(401, signature_valid=False)
            return self.reply(401, {"error": "signature check failed"})
        if not self.headers.get("Content-Type", "").startswith("application/json"):
            self.record(415, signature_valid=True)
            return self.reply(415, {"error": "JSON expected"})
        req = json.loads(body)
        if req.get("type") == "probe":
            return self.reply(200, {"ok": True})
        rcpts = req.get("recipients", [])
        mode = STATE["mode"]
        if mode in ("suspended", "throttle", "error500"):
            status = {"suspended": 503, "throttle": 429, "error500": 500}[mode]
            self.record(status, recipients=rcpts, signature_valid=True)
            return self.reply(status, {"error": mode})
        for k in ("id", "tenant", "from", "recipients"):
            if k not in req:
                self.record(400, signature_valid=True)
                return self.reply(400, {"error": "missing %s" % k})
        raw = base64.b64decode(req["raw_base64"]) if "raw_base64" in req else req.get("text", "").encode()
        mime = email.message_from_bytes(raw, policy=email.policy.default)
        text = mime.get_body(("plain",))
        rejected = [{"recipient": r, "reason": "no such mailbox here"} for r in rcpts if r.lower().endswith("@bounce.test")]
        self.record(200, recipients=rcpts, subject=str(mime["Subject"]), text=text.get_content() if text else None,
                    idempotency_key=self.headers.get("Idempotency-Key"), signature_valid=True, id=req["id"],
                    tenant=req["tenant"])
        self.reply(200, {"rejected": rejected} if rejected else {"ok": True})

    # --- Mastodon-style API: POST /api/v1/statuses, Bearer, Idempotency-Key --------------------

    def social_auth(self):
        if self.bearer() != ARGS.secret:
            self.reply(401, {"error": "The access token is invalid"})
            return False
        return True

    def get_social(self):
        if self.path != "/api/v1/accounts/verify_credentials":
            return self.reply(404, {"error": "Record not found"})
        if self.social_auth():
            self.reply(200, {"id": "1", "username": ARGS.account, "acct": ARGS.account})

    def post_social(self, body):
        if self.path != "/api/v1/statuses":
            return self.reply(404, {"error": "Record not found"})
        if not self.social_auth():
            return self.record(401)
        ctype = self.headers.get("Content-Type", "")
        if ctype.startswith("application/json"):
            form = json.loads(body)
        else:
            form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        key = self.headers.get("Idempotency-Key")
        mode = STATE["mode"]
        if mode == "suspended":
            self.record(403, idempotency_key=key)
            return self.reply(403, {"error": "Your login is currently disabled"})
        if mode == "throttle":
            self.record(429, idempotency_key=key)
            return self.reply(429, {"error": "Too many requests"}, headers={
                "X-RateLimit-Limit": "300", "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": "2026-01-01T00:05:00.000Z"})
        if mode == "error500":
            self.record(500, idempotency_key=key)
            return self.reply(500, {"error": "We're sorry, but something went wrong on our end."})
        if not form.get("status"):
            self.record(422, idempotency_key=key)
            return self.reply(422, {"error": "Validation failed: Text can't be blank"})
        with LOCK:
            status = STATE["idempotency"].get(key) if key else None
            if status is None:
                n = len(STATE["idempotency"]) + 1
                status = {"id": str(n), "url": "https://social.example/@%s/%d" % (ARGS.account, n),
                          "content": "<p>%s</p>" % form["status"], "visibility": form.get("visibility", "public")}
                if key:
                    STATE["idempotency"][key] = status
        self.record(200, recipients=[ARGS.account], text=form["status"], idempotency_key=key,
                    visibility=form.get("visibility"), status_id=status["id"])
        self.reply(200, status)

    # --- SES v2 (the account-level errors and GetAccount that moto lacks) --------------------

    def ses_error(self, status, kind, message):
        self.reply(status, {"message": message}, headers={"x-amzn-ErrorType": kind})

    def ses_auth(self):
        """The credential scope of the SigV4 Authorization header (moto checks the signature)."""
        h = self.headers.get("Authorization", "")
        m = re.match(r"AWS4-HMAC-SHA256 Credential=([^/]+)/\d{8}/([^/]+)/ses/aws4_request, SignedHeaders=[^,]+, Signature=[0-9a-f]{64}$", h)
        if not m:
            self.ses_error(403, "MissingAuthenticationToken", "Missing Authentication Token")
            return False
        if m.group(1) != ARGS.access_key_id:
            self.ses_error(403, "UnrecognizedClientException", "The security token included in the request is invalid.")
            return False
        return True

    def get_ses(self):
        if self.path != "/v2/email/account":
            return self.ses_error(404, "NotFoundException", "Not found")
        if not self.ses_auth():
            return
        shut = STATE["mode"] == "suspended"
        self.reply(200, {
            "DedicatedIpAutoWarmupEnabled": False,
            "EnforcementStatus": "SHUTDOWN" if shut else "HEALTHY",
            "ProductionAccessEnabled": True,
            "SendingEnabled": not shut,
            "SendQuota": {"Max24HourSend": 50000.0, "MaxSendRate": 14.0, "SentLast24Hours": float(STATE["sent"])},
        })

    def post_ses(self, body):
        if self.path != "/v2/email/outbound-emails":
            return self.ses_error(404, "NotFoundException", "Not found")
        if not self.ses_auth():
            return self.record(403)
        req = json.loads(body)
        rcpts = (req.get("Destination") or {}).get("ToAddresses", [])
        mode = STATE["mode"]
        if mode == "suspended":
            self.record(400, recipients=rcpts)
            return self.ses_error(400, "SendingPausedException", "Sending is paused for this account.")
        if mode == "throttle":
            self.record(429, recipients=rcpts)
            return self.ses_error(429, "TooManyRequestsException", "Maximum sending rate exceeded.")
        if mode == "error500":
            self.record(500, recipients=rcpts)
            return self.ses_error(500, "InternalFailure", "Internal failure")
        raw = (((req.get("Content") or {}).get("Raw")) or {}).get("Data")
        if not raw:
            self.record(400, recipients=rcpts)
            return self.ses_error(400, "BadRequestException", "Content is required")
        unverified = [r for r in rcpts if r.lower().endswith("@bounce.test")]
        if unverified:
            self.record(400, recipients=rcpts)
            return self.ses_error(400, "MessageRejected", "Email address is not verified. The following identities failed the check in region US-EAST-1: %s" % ", ".join(unverified))
        mime = email.message_from_bytes(base64.b64decode(raw), policy=email.policy.default)
        text = mime.get_body(("plain",))
        with LOCK:
            STATE["sent"] += len(rcpts)
        self.record(200, recipients=rcpts, subject=str(mime["Subject"]), text=text.get_content() if text else None,
                    tags=req.get("EmailTags"))
        self.reply(200, {"MessageId": "0100" + uuid.uuid4().hex})


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("--api", required=True, choices=["postmark", "mailgun", "sendgrid", "twilio", "webhook", "social", "ses"])
    p.add_argument("--secret", required=True)
    p.add_argument("--domain", default="mg.example.com")
    p.add_argument("--account-sid", default="AC00000000000000000000000000000001")
    p.add_argument("--account", default="status")
    p.add_argument("--access-key-id", default="AKIAFAKE")
    ARGS = p.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print("PORT %d" % server.server_address[1], flush=True)
    sys.stdin.read()


if __name__ == "__main__":
    main()
