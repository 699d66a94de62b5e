"""Starts the worker processes of a local multi-worker cluster (127.0.0.1, free ports)
and stops them within a bounded time: on timeout every worker's process group is
killed, so no process outlives the test."""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_ports(count):
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def run_workers(script, worker_args, timeout, grace=20.0):
    """Runs `script` (a path, or a `["-m", "module"]` list) once per entry of `worker_args` (a list of argument lists), as
    the workers of one cluster; returns `[(returncode, output)]` in task order
    (stdout and stderr together).

    A worker still running `timeout` seconds after the start, or `grace` seconds
    after another worker failed (it would wait for it forever), is killed (SIGKILL
    to its process group) and reported with returncode None.
    """
    ports = free_ports(len(worker_args))
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    processes, logs = [], []
    try:
        for index, args in enumerate(worker_args):
            env = dict(
                os.environ,
                TF_CONFIG=json.dumps(
                    {"cluster": cluster, "task": {"type": "worker", "index": index}}
                ),
                TF_CPP_MIN_LOG_LEVEL="3",
                CUDA_VISIBLE_DEVICES="",
            )
            log = tempfile.TemporaryFile("w+")
            logs.append(log)
            processes.append(
                subprocess.Popen(
                    [sys.executable, *([script] if isinstance(script, str) else script), *args],
                    cwd=ROOT,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    text=True,
                    start_new_session=True,
                )
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            codes = [p.poll() for p in processes]
            if all(code is not None for code in codes):
                break
            if any(code not in (None, 0) for code in codes):
                deadline = min(deadline, time.monotonic() + grace)
            time.sleep(0.2)
        results = []
        for process, log in zip(processes, logs):
            code = process.poll()
            if code is None:
                _kill(process)
                process.wait()
            log.seek(0)
            results.append((code, log.read()))
        return results
    finally:
        for process in processes:
            if process.poll() is None:
                _kill(process)
                process.wait()
        for log in logs:
            log.close()


def _kill(process):
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
