# Copyright: distcloud.prestage contributors
# Apache License 2.0 (see LICENSE)
"""A stdout callback for tests: the whole run as one JSON document, printed when it ends.

    ANSIBLE_CALLBACK_PLUGINS=tests/callbacks ANSIBLE_STDOUT_CALLBACK=json_document

Its document has the shape the tests read from ansible.posix.json's ({"plays": [{"play": {...},
"tasks": [{"task": {"name": ...}, "hosts": {host: result}}]}], "stats": {host: counts}}), so a
test reads either; this one needs no PyPI `ansible` package, which ships ansible.posix for one
ansible-core only (scripts/core-matrix's venvs have none). It uses the callback API that
ansible-core 2.19 made public (result.host, result.task, result.result); the core matrix runs
tests/integration/test_json_document_callback.py on every supported core.
"""

from __future__ import annotations

import json
from typing import Any

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
    name: json_document
    type: stdout
    short_description: the run as one JSON document (tests only)
    description: The plays, each task's result per host, and the per-host stats, printed at the end.
"""


class CallbackModule(CallbackBase):  # type: ignore[misc]
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "stdout"
    CALLBACK_NAME = "json_document"

    def __init__(self) -> None:
        super().__init__()
        self.plays: list[dict[str, Any]] = []

    def _tasks(self) -> list[dict[str, Any]]:
        if not self.plays:  # results outside any play (none expected): keep them anyway
            self.plays.append({"play": {"name": "", "id": ""}, "tasks": []})
        tasks: list[dict[str, Any]] = self.plays[-1]["tasks"]
        return tasks

    def v2_playbook_on_play_start(self, play: Any) -> None:
        self.plays.append({"play": {"name": play.get_name(), "id": str(play._uuid)}, "tasks": []})

    def v2_playbook_on_task_start(self, task: Any, is_conditional: bool) -> None:
        self._tasks().append({"task": {"name": task.get_name(), "id": str(task._uuid)},
                              "hosts": {}})  # fmt: skip

    def v2_playbook_on_handler_task_start(self, task: Any) -> None:
        self.v2_playbook_on_task_start(task, False)

    def _record(self, result: Any, **flags: bool) -> None:
        data = json.loads(self._dump_results(result.result))
        data.update({key: value for key, value in flags.items() if value})
        data.setdefault("action", result.task.action)
        uuid = str(result.task._uuid)
        tasks = self._tasks()
        # the task's own entry (a free strategy may report a task after the next one started)
        entry = next((t for t in reversed(tasks) if t["task"]["id"] == uuid), None)
        if entry is None:
            entry = {"task": {"name": result.task.get_name(), "id": uuid}, "hosts": {}}
            tasks.append(entry)
        entry["hosts"][result.host.get_name()] = data

    def v2_runner_on_ok(self, result: Any) -> None:
        self._record(result)

    def v2_runner_on_failed(self, result: Any, ignore_errors: bool = False) -> None:
        self._record(result, failed=True)

    def v2_runner_on_skipped(self, result: Any) -> None:
        self._record(result, skipped=True)

    def v2_runner_on_unreachable(self, result: Any) -> None:
        self._record(result, unreachable=True)

    def v2_playbook_on_stats(self, stats: Any) -> None:
        summary = {host: stats.summarize(host) for host in sorted(stats.processed)}
        document = {"plays": self.plays, "stats": summary}
        custom = stats.custom.get("_run")
        if custom:
            document["global_custom_stats"] = custom
        self._display.display(json.dumps(document, indent=4, sort_keys=True, default=str))
