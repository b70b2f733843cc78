"""Runs summarise_feed.py as the agent would, against a tiny fake agent.

    cd examples/python-workflow && PYTHONPATH=../../sdk/python python3 -m unittest -q
"""

import json
import os
import subprocess
import sys
import tempfile
import threading
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
SDK = os.path.join(HERE, "..", "..", "sdk", "python")


class FakeAgent(BaseHTTPRequestHandler):
    grants = 0
    reports = []
    denials = 0

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
        if self.headers.get("Authorization") != "Bearer run-token":
            return self._send(401, {"error": {"code": "unauthorized", "message": "wrong run token"}})
        if self.path == "/v1/actions/reserve":
            if body.get("action") != "digest" or FakeAgent.grants == 0:
                FakeAgent.denials += 1
                return self._send(429, {"allowed": False, "reason": "cap used up", "remaining": 0})
            FakeAgent.grants -= 1
            return self._send(200, {"allowed": True, "reservation": "r%d" % len(FakeAgent.reports), "remaining": FakeAgent.grants})
        if self.path == "/v1/actions":
            FakeAgent.reports.append(body)
            return self._send(200, {"seq": len(FakeAgent.reports)})
        self._send(404, {"error": {"code": "not_found", "message": self.path}})


class SummariseFeedTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = ThreadingHTTPServer(("127.0.0.1", 0), FakeAgent)
        threading.Thread(target=cls.server.serve_forever, daemon=True).start()
        cls.url = "http://127.0.0.1:%d" % cls.server.server_address[1]

    @classmethod
    def tearDownClass(cls):
        cls.server.shutdown()
        cls.server.server_close()

    def run_workflow(self, grants, config):
        FakeAgent.grants, FakeAgent.reports, FakeAgent.denials = grants, [], 0
        out = tempfile.mkdtemp()
        env = dict(os.environ, PYTHONPATH=SDK, BERTH_AGENT_URL=self.url, BERTH_RUN_TOKEN="run-token",
                   BERTH_CONFIG=json.dumps(config), BERTH_WORKFLOW="summarise-feed", BERTH_EXAMPLE_OUT=out)
        p = subprocess.run([sys.executable, os.path.join(HERE, "summarise_feed.py")], env=env,
                           capture_output=True, text=True, timeout=60)
        lines = [json.loads(l) for l in p.stderr.splitlines() if l.startswith("{")]
        return p, lines, out

    def test_cap_grants_two_and_skips_the_rest(self):
        p, lines, out = self.run_workflow(2, {"digests_per_day": 2})
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout, "")  # no stdout JSON that the agent would take for actions
        self.assertEqual([r["target"] for r in FakeAgent.reports], ["item-001", "item-002"])
        self.assertTrue(all(r["success"] for r in FakeAgent.reports))
        self.assertEqual(FakeAgent.denials, 4)
        self.assertEqual(sorted(os.listdir(out)), ["item-001.json", "item-002.json"])
        with open(os.path.join(out, "item-001.json")) as f:
            d = json.load(f)
        self.assertTrue(d["lead"].startswith("Volunteers relit"))
        self.assertIn("lanterns", d["keywords"])
        self.assertEqual(lines[-1], {"event": "summary", "digested": 2, "denied": 4, "failed": 0})

    def test_limit(self):
        p, lines, _ = self.run_workflow(10, {"limit": 3})
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(len(FakeAgent.reports), 3)
        self.assertEqual(lines[-1]["digested"], 3)

    def test_outside_the_agent_it_says_so(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("BERTH_")}
        env["PYTHONPATH"] = SDK
        p = subprocess.run([sys.executable, os.path.join(HERE, "summarise_feed.py")], env=env,
                           capture_output=True, text=True, timeout=60)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("BERTH_AGENT_URL", p.stderr)


if __name__ == "__main__":
    unittest.main()
