"""Berth workload helper: reserve quota before an action, report it after.

Standard library only. Run your code under ``berth agent``; it sets
BERTH_AGENT_URL, BERTH_RUN_TOKEN and BERTH_CONFIG for the run.

    import berth_workload as bw

    client = bw.Client.from_env()
    cfg = client.config()
    try:
        client.do("like", "@maple_fox_demo", lambda: page.click("like"))
    except bw.Denied as d:
        print("quota used up:", d.reason)
"""

import json
import os
import urllib.error
import urllib.request

__all__ = ["Client", "Reservation", "Denied", "ProtocolError"]


class Denied(Exception):
    """The agent refused the reservation (HTTP 429): the quota is used up."""

    def __init__(self, action, reason):
        super().__init__("%s denied: %s" % (action, reason))
        self.action = action
        self.reason = reason


class ProtocolError(Exception):
    """Any other error answer of the agent."""

    def __init__(self, status, code, message):
        super().__init__("agent answered %d %s: %s" % (status, code, message))
        self.status = status
        self.code = code
        self.message = message


class Reservation:
    """One granted unit of quota. remaining is -1 when unlimited."""

    def __init__(self, id, action, remaining):
        self.id = id
        self.action = action
        self.remaining = remaining

    def __repr__(self):
        return "Reservation(%r, %r, remaining=%r)" % (self.id, self.action, self.remaining)


class Client:
    def __init__(self, base_url, token, config=None, timeout=30.0):
        self.base_url = base_url.rstrip("/")
        self.token = token
        self._config = config
        self.timeout = timeout

    @classmethod
    def from_env(cls, environ=None):
        env = os.environ if environ is None else environ
        base, token = env.get("BERTH_AGENT_URL"), env.get("BERTH_RUN_TOKEN")
        if not base or not token:
            raise RuntimeError("BERTH_AGENT_URL and BERTH_RUN_TOKEN must be set (run this under berth agent)")
        raw = env.get("BERTH_CONFIG")
        if not raw and env.get("BERTH_CONFIG_FILE"):
            with open(env["BERTH_CONFIG_FILE"], encoding="utf-8") as f:
                raw = f.read()
        return cls(base, token, json.loads(raw) if raw else {})

    def config(self):
        """The run's config (the start request's config over the workflow defaults)."""
        return dict(self._config or {})

    def reserve(self, action):
        """Reserve one unit of quota for action; raises Denied on 429."""
        status, body = self._post("/v1/actions/reserve", {"action": action})
        if status == 429 or not body.get("allowed"):
            raise Denied(action, body.get("reason", ""))
        return Reservation(body["reservation"], action, body.get("remaining", -1))

    def report(self, reservation, target, success, detail=None):
        """Record the outcome; returns the action's seq once it is durable."""
        req = {"reservation": reservation.id, "target": target, "success": bool(success)}
        if detail is not None:
            req["detail"] = detail
        _, body = self._post("/v1/actions", req)
        return body["seq"]

    def do(self, action, target, fn):
        """Reserve, run fn(), report (success unless fn raised) and return fn's result.

        Raises Denied without calling fn when the quota is used up; re-raises
        fn's exception after reporting the failure.
        """
        res = self.reserve(action)
        try:
            result = fn()
        except Exception as e:
            self.report(res, target, False, {"error": str(e)})
            raise
        self.report(res, target, True)
        return result

    def _post(self, path, payload):
        data = json.dumps(payload).encode("utf-8")
        req = urllib.request.Request(self.base_url + path, data=data, method="POST", headers={
            "Content-Type": "application/json",
            "Authorization": "Bearer " + self.token,
        })
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return resp.status, json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as e:
            raw = e.read() or b"{}"
            try:
                body = json.loads(raw)
            except ValueError:
                body = {}
            if e.code == 429:
                return 429, body
            err = body.get("error", {}) if isinstance(body, dict) else {}
            raise ProtocolError(e.code, err.get("code", ""), err.get("message", raw.decode("utf-8", "replace"))) from None
