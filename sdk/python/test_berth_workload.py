"""Unit tests of berth_workload against a tiny fake agent (http.server)."""

import json
import threading
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import berth_workload as bw


class FakeAgent(BaseHTTPRequestHandler):
    grants = 1
    reports = []

    def log_message(self, *args):
        pass

    def _send(self, status, body):
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.headers.get("Authorization") != "Bearer tok":
            return self._send(401, {"error": {"code": "unauthorized", "message": "wrong run token"}})
        if self.path == "/v1/actions/reserve":
            if FakeAgent.grants == 0:
                return self._send(429, {"allowed": False, "reason": "used up", "remaining": 0})
            FakeAgent.grants -= 1
            return self._send(200, {"allowed": True, "reservation": "r-" + body["action"], "remaining": FakeAgent.grants})
        if self.path == "/v1/actions":
            FakeAgent.reports.append(body)
            return self._send(200, {"seq": len(FakeAgent.reports)})
        self._send(404, {"error": {"code": "not_found", "message": "no"}})


class ClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = ThreadingHTTPServer(("127.0.0.1", 0), FakeAgent)
        cls.thread = threading.Thread(target=cls.server.serve_forever, daemon=True)
        cls.thread.start()
        cls.url = "http://127.0.0.1:%d" % cls.server.server_address[1]

    @classmethod
    def tearDownClass(cls):
        cls.server.shutdown()
        cls.server.server_close()

    def setUp(self):
        FakeAgent.grants = 2
        FakeAgent.reports = []
        self.client = bw.Client.from_env({"BERTH_AGENT_URL": self.url, "BERTH_RUN_TOKEN": "tok",
                                          "BERTH_CONFIG": '{"likes_per_day": 3}'})

    def test_config(self):
        self.assertEqual(self.client.config(), {"likes_per_day": 3})

    def test_reserve_and_report(self):
        res = self.client.reserve("like")
        self.assertEqual((res.id, res.remaining), ("r-like", 1))
        self.assertEqual(self.client.report(res, "@maple_fox_demo", True, {"n": 1}), 1)
        self.assertEqual(FakeAgent.reports[0], {"reservation": "r-like", "target": "@maple_fox_demo",
                                                "success": True, "detail": {"n": 1}})

    def test_do_reports_failure_and_denial(self):
        with self.assertRaises(ValueError):
            self.client.do("like", "@a", lambda: (_ for _ in ()).throw(ValueError("boom")))
        self.assertFalse(FakeAgent.reports[0]["success"])
        self.assertEqual(self.client.do("follow", "@b", lambda: 42), 42)
        called = []
        with self.assertRaises(bw.Denied) as cm:
            self.client.do("like", "@c", lambda: called.append(1))
        self.assertEqual(cm.exception.reason, "used up")
        self.assertEqual(called, [])

    def test_protocol_error(self):
        bad = bw.Client(self.url, "wrong")
        with self.assertRaises(bw.ProtocolError) as cm:
            bad.reserve("like")
        self.assertEqual((cm.exception.status, cm.exception.code), (401, "unauthorized"))

    def test_from_env_requires_agent(self):
        with self.assertRaises(RuntimeError):
            bw.Client.from_env({})


if __name__ == "__main__":
    unittest.main()
