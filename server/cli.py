"""The ``homepilot`` command: run, validate, nodes, serve."""

from __future__ import annotations

import gc
import json
import logging
import os
import sys
import threading
from types import FrameType
from typing import TYPE_CHECKING, Any

import click
import uvicorn

from engine.errors import GraphLoadError, GraphValidationError
from engine.settings import get_settings

if TYPE_CHECKING:
    from server.services.runs import RunService


def _registry(custom_nodes: tuple[str, ...]) -> Any:
    from server.app import build_registry
    registry = build_registry(get_settings(), list(custom_nodes))
    # Start-up objects (modules, schemas, packs) live forever: freezing them keeps every
    # later full collection small, so large graphs do not pay for the whole heap.
    gc.collect()
    gc.freeze()
    return registry


def _parse_sets(pairs: tuple[str, ...]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{pair!r} is not name=value", param_hint="--set")
        try:
            values[name] = json.loads(value) if value[:1] in "[{\"" else value
        except json.JSONDecodeError:
            values[name] = value
    return values


def _read_here(settings: Any) -> None:
    """A graph run from the command line may read files in the current folder (`--set
    image=photo.png`): the person at the terminal owns them. Graphs sent to the server
    may not. Set in the environment too, for the Ray workers this process starts."""
    here = os.getcwd()
    settings.read_dirs = os.pathsep.join(p for p in (settings.read_dirs, here) if p)
    os.environ["HOMEPILOT_READ_DIRS"] = settings.read_dirs


def _load(file: str) -> Any:
    from engine.loader import load_graph
    try:
        return load_graph(file)
    except GraphLoadError as exc:
        raise click.ClickException(str(exc)) from exc


def _issues_json(exc: GraphValidationError) -> list[dict[str, Any]]:
    return [issue.model_dump() for issue in exc.issues]


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="log engine details")
def main(verbose: bool) -> None:
    """HomePilot: a local-first generative-AI server where every feature is a node graph."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")


@main.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--set", "sets", multiple=True, metavar="NAME=VALUE", help="a graph input")
@click.option("--executor", type=click.Choice(["ray", "local"]), default=None,
              help="where nodes run (default: ray, or HOMEPILOT_EXECUTOR)")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object, no progress bars")
@click.option("--custom-nodes", multiple=True, type=click.Path(file_okay=False),
              help="a folder of custom node packs (repeatable)")
@click.option("--output", "outputs", multiple=True, help="only compute these graph outputs")
@click.option("--ray-address", default=None, help="join this Ray cluster ('auto' for local)")
def run(file: str, sets: tuple[str, ...], executor: str | None, as_json: bool,
        custom_nodes: tuple[str, ...], outputs: tuple[str, ...], ray_address: str | None) -> None:
    """Run a graph file and print its outputs."""
    from server.app import build_executor
    from server.progress import ProgressView
    from server.serialize import jsonable

    settings = get_settings()
    if ray_address:
        settings.ray_address = ray_address
    _read_here(settings)
    graph = _load(file)
    registry = _registry(custom_nodes)
    engine = build_executor(settings, registry, executor)
    view = None if as_json or not sys.stdout.isatty() else ProgressView()
    try:
        handle = engine.submit(graph, _parse_sets(sets), outputs=list(outputs) or None,
                               listener=view.on_event if view else None)
    except GraphValidationError as exc:
        if as_json:
            click.echo(json.dumps({"status": "invalid", "issues": _issues_json(exc)}, indent=2))
        else:
            click.echo(str(exc), err=True)
        sys.exit(2)
    try:
        with view or _Nothing():
            result = handle.result()
    except KeyboardInterrupt:
        handle.cancel()
        result = handle.result(60)
    from engine.files import FileStore
    store = FileStore(settings.home / "files")
    payload = {"run_id": result.run_id, "status": result.status,
               "outputs": jsonable(result.outputs, store), "executed": result.executed,
               "cached": result.cached,
               "timings": {n: round(t.end - t.start, 6) for n, t in result.timings.items()}}
    if result.ui:
        payload["ui"] = jsonable(result.ui, store)
    if result.error is not None:
        payload["error"] = result.error.model_dump()
    if as_json:
        click.echo(json.dumps(payload, indent=2, default=str))
    else:
        _print_result(payload)
    engine.close()
    sys.exit(0 if result.status == "success" else 1)


class _Nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _print_result(payload: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.pretty import Pretty

    console = Console()
    style = {"success": "green", "failed": "red", "cancelled": "yellow"}[payload["status"]]
    console.print(f"[{style}]{payload['status']}[/] run {payload['run_id']} — "
                  f"{len(payload['executed'])} executed, {len(payload['cached'])} cached")
    for name, value in payload["outputs"].items():
        if isinstance(value, (dict, list)):
            console.print(f"[bold]{name}[/] =", Pretty(value))
        else:
            console.print(f"[bold]{name}[/] = {value!r}", highlight=False)
    if "error" in payload:
        error = payload["error"]
        console.print(f"[red]node {error['node_id']} ({error['node_type']}) failed: "
                      f"{error['error_type']}: {error['message']}[/]")


@main.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--custom-nodes", multiple=True, type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True)
@click.option("--set", "sets", multiple=True, metavar="NAME=VALUE")
def validate(file: str, custom_nodes: tuple[str, ...], as_json: bool,
             sets: tuple[str, ...]) -> None:
    """Check a graph file; prints every problem and exits non-zero if there are any."""
    from engine.compiler import validate_graph

    graph = _load(file)
    issues = validate_graph(graph, _registry(custom_nodes), _parse_sets(sets))
    if as_json:
        click.echo(json.dumps({"ok": not issues, "issues": [i.model_dump() for i in issues]},
                              indent=2))
    elif issues:
        click.echo(f"{file}: {len(issues)} problem(s)", err=True)
        for issue in issues:
            click.echo(f"  - {issue}", err=True)
    else:
        click.echo(f"{file}: ok ({len(graph.nodes)} nodes)")
    sys.exit(1 if issues else 0)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="every node's full schema")
@click.option("--custom-nodes", multiple=True, type=click.Path(file_okay=False))
def nodes(as_json: bool, custom_nodes: tuple[str, ...]) -> None:
    """List the installed node types."""
    registry = _registry(custom_nodes)
    if as_json:
        click.echo(json.dumps(registry.schemas(), indent=2, default=str))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("type", "category", "inputs", "outputs", "source")
    for spec in registry.specs():
        table.add_row(spec.type, spec.category, ", ".join(i.name for i in spec.inputs),
                      ", ".join(f"{o.name}:{o.type}" for o in spec.outputs), spec.source)
    Console().print(table)
    for pack in registry.packs:
        if not pack.ok:
            click.echo(f"pack {pack.name} failed to import: {pack.error}", err=True)


@main.command()
@click.option("--host", default=None, help="address to listen on (default 127.0.0.1)")
@click.option("--port", default=None, type=int, help="port (default 8000)")
@click.option("--ray-address", default=None, help="join a Ray cluster (e.g. 'auto')")
@click.option("--executor", type=click.Choice(["ray", "local"]), default=None)
@click.option("--custom-nodes", multiple=True, type=click.Path(file_okay=False))
def serve(host: str | None, port: int | None, ray_address: str | None, executor: str | None,
          custom_nodes: tuple[str, ...]) -> None:
    """Start the HTTP server (the engine API, ComfyUI's API, later the HomePilot API)."""
    from server.app import build_executor, create_app

    settings = get_settings()
    if ray_address:
        settings.ray_address = ray_address
    registry = _registry(custom_nodes)
    engine = build_executor(settings, registry, executor)
    status = engine.status()
    host, port = host or settings.host, port or settings.port
    click.echo(f"HomePilot on http://{host}:{port}  (executor: {status['executor']}, "
               f"{len(registry)} node types)")
    if status.get("dashboard_url"):
        click.echo(f"Ray dashboard: {status['dashboard_url']}  (token: "
                   f"{status.get('dashboard_token_file')})")
    for pack in registry.packs:
        if not pack.ok:
            click.echo(f"pack {pack.name} skipped: {pack.error}", err=True)
    app = create_app(settings, registry, engine)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning",
                            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S)
    try:
        StoppingServer(config, app.state.homepilot.runs).run()
    finally:
        engine.close()
        if status["executor"] == "ray":
            _stop_ray()


# Seconds a stopping server waits for in-flight requests once their runs are cancelled.
# A cancelled run answers within a step or two; this bounds a step that computes on.
GRACEFUL_SHUTDOWN_S = 5.0


class StoppingServer(uvicorn.Server):
    """uvicorn's server, but a stop signal (SIGTERM, SIGINT) first cancels every running run.

    uvicorn's graceful shutdown waits for in-flight requests, and a request waiting on a
    generation would hold the server for the whole generation. Cancelled, its run ends at
    the next step and the request answers (503 cancelled). A second signal stops waiting.
    uvicorn re-raises the signal once stopped; this one does not, so a clean stop exits 0.
    """

    def __init__(self, config: uvicorn.Config, runs: RunService) -> None:
        super().__init__(config)
        self.runs = runs

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.should_exit:
            self.force_exit = True
            return
        self.should_exit = True
        # A signal handler runs between two bytecodes of the main thread, which may hold
        # the run service's lock right now: cancel from a thread of its own.
        threading.Thread(target=self.cancel_runs, name="homepilot-stop", daemon=True).start()

    def cancel_runs(self) -> None:
        running = self.runs.running()
        if running:
            click.echo(f"stopping: cancelling {len(running)} running run(s)", err=True)
        for record in running:
            record.handle.cancel()


# Seconds ray.shutdown() may take. It takes about one when Ray's processes are alive.
RAY_STOP_S = 4.0


def _stop_ray() -> None:
    """Stop the local Ray this process started (its model hosts with it), or leave the
    cluster it joined, before the process ends.

    When the signal went to the whole process group (systemd's default, `kill -- -PGID`),
    Ray's own processes are gone already and ray.shutdown() waits ~8 s for them. Past
    RAY_STOP_S the process ends at once instead: the kernel kills what this Ray started
    when its parent exits (Ray sets PR_SET_PDEATHSIG), and Ray's exit hook would only wait
    again.
    """
    import ray

    stopping = threading.Thread(target=ray.shutdown, name="homepilot-ray-stop", daemon=True)
    stopping.start()
    stopping.join(RAY_STOP_S)
    if stopping.is_alive():
        click.echo(f"Ray did not stop within {RAY_STOP_S:g} s (were its processes signalled "
                   "too?); exiting without it", err=True)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


@main.group()
def models() -> None:
    """The model store: list, show, remove."""


def _store() -> Any:
    from engine.models.store import ModelStore
    from nodes.backends.bundled import register_bundled

    store = ModelStore(get_settings().models_dir)
    register_bundled(store)
    return store


@models.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.option("--kind", default=None, help="llm, embedding, diffusion, ...")
def models_list(as_json: bool, kind: str | None) -> None:
    """Installed models."""
    found = _store().list(kind)
    if as_json:
        click.echo(json.dumps([m.model_dump() for m in found], indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("id", "kind", "format", "size", "source", "flags")
    for m in found:
        flags = ", ".join(f for f, on in (("bundled", m.bundled), ("test", m.test)) if on)
        table.add_row(m.id, m.kind, m.format, f"{m.size_bytes / 1024**2:.0f} MB", m.source, flags)
    Console().print(table)


def _get(model_id: str) -> Any:
    from engine.models.store import ModelNotFoundError
    try:
        return _store().get(model_id)
    except ModelNotFoundError as exc:
        raise click.ClickException(str(exc)) from exc


@models.command("show")
@click.argument("model_id")
def models_show(model_id: str) -> None:
    """One model's manifest."""
    click.echo(_get(model_id).model_dump_json(indent=2))


@models.command("remove")
@click.argument("model_id")
@click.option("--yes", is_flag=True, help="do not ask")
def models_remove(model_id: str, yes: bool) -> None:
    """Remove a model from the store (bundled ones come back on the next start)."""
    manifest = _get(model_id)
    if not yes:
        click.confirm(f"remove {manifest.id} ({manifest.kind}, {manifest.source})?", abort=True)
    _store().remove(model_id)
    click.echo(f"removed {model_id}")


@models.command("install-test-pack")
def models_install_test_pack() -> None:
    """Build tiny random-weight models locally and register them as test models."""
    from nodes.testpack.install import install_test_pack

    for model_id in install_test_pack(_store()):
        click.echo(f"installed {model_id} (test model)")


@models.command("remove-test-pack")
def models_remove_test_pack() -> None:
    """Remove every test-pack model from the store."""
    from nodes.testpack.install import remove_test_pack

    removed = remove_test_pack(_store())
    for model_id in removed:
        click.echo(f"removed {model_id} (test model)")
    if not removed:
        click.echo("no test models are installed")


@main.group("graph")
def graph_group() -> None:
    """Graph files and ComfyUI's formats (the editor's workflows, API prompts)."""


@graph_group.command("export")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", required=True,
              type=click.Choice(["comfy-ui", "comfy-api", "yaml"]),
              help="comfy-ui: a workflow the editor opens; comfy-api: a prompt for "
                   "POST /prompt; yaml: our graph file")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="write here instead of standard output")
@click.option("--custom-nodes", multiple=True, type=click.Path(file_okay=False))
def graph_export(file: str, fmt: str, output: str | None,
                 custom_nodes: tuple[str, ...]) -> None:
    """Convert FILE (our YAML/JSON graph, a UI workflow or an API prompt) to another form."""
    from engine.workflow import export_file
    from server.app import build_registry

    try:
        text = export_file(file, fmt, build_registry(get_settings(), list(custom_nodes)))
    except GraphLoadError as exc:
        raise click.ClickException(str(exc)) from exc
    if output is None:
        click.echo(text, nl=False)
        return
    with open(output, "w", encoding="utf-8") as handle:
        handle.write(text)
