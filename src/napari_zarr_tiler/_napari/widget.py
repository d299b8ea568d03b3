"""The "Convert to zarr" dock widget: a magicgui shell over :func:`napari_zarr_tiler.convert`.

The conversion runs in a napari thread worker (the viewer never blocks); progress goes to napari's
progress bar; Cancel stops the engine between regions and removes what it wrote.
"""

from __future__ import annotations

import queue
import threading
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    Label,
    LineEdit,
    PushButton,
    SpinBox,
)
from napari.layers import Image, Labels
from napari.qt.threading import GeneratorWorker, thread_worker
from napari.utils import progress
from napari.utils.notifications import show_error, show_info

from ..converter import (
    COMPRESSORS,
    DEFAULT_LEVELS,
    LEVEL_RANGES,
    ConversionResult,
    LevelZero,
    Progress,
    convert,
    parse_levels,
    parse_shape,
)
from ..converter.options import resolve_plan
from ..errors import ConversionCancelled, DestinationExistsError, ZarrTilerError
from .labels_offer import store_labels_destination
from .layer_metadata import conversion_options, level_zero

if TYPE_CHECKING:
    import napari

_DONE = object()


class _Failed:
    """An error handed from the worker to the widget (superqt re-raises returned exceptions)."""

    def __init__(self, error: Exception) -> None:
        self.error = error


class _Run:
    """One conversion as the widget sees it: its progress bar, its stop flag, whether it ended.

    napari's progress bar processes Qt events inside ``update`` and ``set_description``, so any
    other handler (a second ``yielded``, ``returned``, ``finished``, a click on Cancel or
    Convert) can run in the middle of :meth:`advance`. Every handler therefore works on its
    own run (never on "the current one"), re-checks :attr:`ended` after each call that can
    process events, and the bar is closed once, by :meth:`_close_when_idle`, only when no
    handler is inside it.
    """

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.ended = False
        self._bar: progress | None = None
        self._tiles_seen = 0
        self._inside_bar = 0  # handlers currently inside a bar call (nested by processEvents)

    def open_bar(self, total: int) -> None:
        """Show napari's progress bar (this processes events: the run may end meanwhile)."""
        self._inside_bar += 1
        try:
            self._bar = progress(total=total, desc="Converting to zarr")
        finally:
            self._inside_bar -= 1
        self._close_when_idle()

    def advance(self, event: Progress) -> None:
        """Move the bar to ``event``'s tile count and show the speed."""
        bar = self._bar
        if bar is None or self.ended:
            return
        # Counted before the bar runs nested handlers, so that none counts a tile twice.
        step = max(event.tiles_done - self._tiles_seen, 0)
        self._tiles_seen = max(self._tiles_seen, event.tiles_done)
        self._inside_bar += 1
        try:
            if step:
                bar.update(step)
            if not self.ended:
                bar.set_description(f"Converting to zarr ({event.megabytes_per_second:.0f} MB/s)")
        finally:
            self._inside_bar -= 1
        self._close_when_idle()

    def end(self) -> None:
        """Mark the run ended; its bar closes as soon as no handler is inside it."""
        self.ended = True
        self.stop.set()
        self._close_when_idle()

    def _close_when_idle(self) -> None:
        if self.ended and self._inside_bar == 0 and self._bar is not None:
            bar, self._bar = self._bar, None
            bar.close()


class ConvertWidget(Container):
    """Convert the selected Image or Labels layer into a tiled, compressed OME-Zarr pyramid."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__(labels=True)
        self._viewer = napari_viewer
        self.layer = ComboBox(name="layer", label="layer", choices=self._layer_choices)
        self.output = FileEdit(name="output", label="output", mode="w", filter="*.zarr")
        self.chunks = LineEdit(name="chunks", label="chunks", value="512")
        self.compressor = ComboBox(
            name="compressor", label="compressor", choices=COMPRESSORS, value="zstd"
        )
        self.clevel = SpinBox(
            name="clevel", label="clevel", min=0, max=22, value=DEFAULT_LEVELS["zstd"]
        )
        self.zarr_format = ComboBox(
            name="zarr_format", label="zarr format", choices=(3, 2), value=3
        )
        self.ome_version = ComboBox(
            name="ome_version",
            label="OME-Zarr version",
            choices=("0.5", "0.6", "0.4"),
            value="0.5",
        )
        self.shards = LineEdit(name="shards", label="shards", value="")
        self.levels = LineEdit(name="levels", label="levels", value="auto")
        self.downsample_z = ComboBox(
            name="downsample_z",
            label="downsample z",
            choices=("auto", "always", "never"),
            value="auto",
        )
        self.overwrite = CheckBox(
            name="overwrite", text="overwrite an existing zarr store", value=False
        )
        self.open_result = CheckBox(name="open_result", text="open the result", value=True)
        self.info = Label(name="info", label="")
        self.run_button = PushButton(name="run", text="Convert")
        self.cancel_button = PushButton(name="cancel", text="Cancel", enabled=False)
        self.extend(
            [
                self.layer,
                self.output,
                self.chunks,
                self.compressor,
                self.clevel,
                self.zarr_format,
                self.ome_version,
                self.shards,
                self.levels,
                self.downsample_z,
                self.overwrite,
                self.open_result,
                self.info,
                self.run_button,
                self.cancel_button,
            ]
        )
        self.worker: GeneratorWorker | None = None
        self._run: _Run | None = None
        for widget in (
            self.layer,
            self.chunks,
            self.zarr_format,
            self.ome_version,
            self.shards,
            self.levels,
            self.downsample_z,
        ):
            widget.changed.connect(self._update_info)
        self.layer.changed.connect(self._offer_store_labels)
        self.compressor.changed.connect(self._compressor_changed)
        # 0.4 is zarr format 2, 0.5 and 0.6 zarr format 3: each choice follows the other
        self.ome_version.changed.connect(
            lambda v: setattr(self.zarr_format, "value", 2 if v == "0.4" else 3)
        )
        self.zarr_format.changed.connect(self._zarr_format_changed)
        self.run_button.changed.connect(self.start)
        self.cancel_button.changed.connect(self.cancel)
        napari_viewer.layers.events.inserted.connect(self.reset_choices)
        napari_viewer.layers.events.removed.connect(self.reset_choices)
        napari_viewer.layers.selection.events.active.connect(self._select_active)
        self.reset_choices()
        self._select_active()
        self._update_info()

    # -- choices and live information ---------------------------------------------------------

    def _offer_store_labels(self, layer: Any) -> None:
        """Offer, as the output, the store of the image a Labels layer was drawn over.

        Only while no output is set: a Labels layer over an image opened from a zarr store goes
        to ``STORE/labels/NAME``, added to that image (its own files untouched).
        """
        if str(self.output.value) not in ("", "."):
            return
        destination = store_labels_destination(self._viewer, layer)
        if destination is not None:
            self.output.value = destination

    def _layer_choices(self, _widget: Any = None) -> list[tuple[str, Any]]:
        return [
            (layer.name, layer)
            for layer in self._viewer.layers
            if isinstance(layer, Image | Labels)
        ]

    def _select_active(self, _event: Any = None) -> None:
        active = self._viewer.layers.selection.active
        if isinstance(active, Image | Labels) and active in [c[1] for c in self._layer_choices()]:
            self.layer.value = active

    def _compressor_changed(self, name: str) -> None:
        self.clevel.enabled = name != "none"
        if name != "none":
            self.clevel.min, self.clevel.max = max(LEVEL_RANGES[name][0], 0), LEVEL_RANGES[name][1]
        self.clevel.value = DEFAULT_LEVELS[name]

    def _zarr_format_changed(self, zarr_format: int) -> None:
        if (zarr_format == 2) != (self.ome_version.value == "0.4"):
            self.ome_version.value = "0.4" if zarr_format == 2 else "0.5"

    def _options(self) -> dict[str, Any]:
        chunks = parse_shape(self.chunks.value, name="chunks")
        return {
            "chunks": 512 if chunks is None else chunks,
            "shards": parse_shape(self.shards.value, name="shards"),
            "levels": parse_levels(self.levels.value),
            "downsample_z": self.downsample_z.value,
            "zarr_format": int(self.zarr_format.value),
        }

    def _plan(self):
        """The plan :func:`convert` will make: the layer's axis labels (when OME names) and scale
        decide which axis ``downsample_z`` halves, as in the conversion itself."""
        layer = self.layer.value
        if layer is None:
            msg = "open an image or labels layer to convert"
            raise ValueError(msg)
        data, meta, layer_type = layer.as_layer_data_tuple()
        implied = conversion_options(meta, layer_type)
        return resolve_plan(
            LevelZero(level_zero(data, meta), rgb=implied["rgb"]),
            axes=implied.get("axes"),
            scale=implied.get("scale"),
            ome_version=self.ome_version.value,
            **self._options(),
        )

    def _update_info(self, _event: Any = None) -> None:
        try:
            self.info.value = self._plan().describe()
        except (ValueError, TypeError, ZarrTilerError) as error:
            self.info.value = f"⚠ {error}"

    # -- running -------------------------------------------------------------------------------

    def _request(self) -> tuple[int, Any, Path, dict[str, Any]]:
        """The tile count, source, output and options of the conversion the controls describe."""
        plan = self._plan()
        output = Path(self.output.value)
        if not str(self.output.value) or output == Path():
            msg = "choose an output path, for example /data/slide.zarr"
            raise ValueError(msg)
        layer = self.layer.value
        data, meta, layer_type = layer.as_layer_data_tuple()
        options = {
            **conversion_options(meta, layer_type),
            **self._options(),
            "compressor": self.compressor.value,
            "clevel": None if self.compressor.value == "none" else int(self.clevel.value),
            "overwrite": bool(self.overwrite.value),
            "ome_version": self.ome_version.value,
            # where napari read the layer from: the destination may not overlap it
            "source_paths": [layer.source.path] if layer.source.path else [],
        }
        return plan.tiles, level_zero(data, meta), output, options

    def start(self, _event: Any = None) -> None:
        """Validate the parameters and start the conversion in a thread worker."""
        if self._run is not None:
            return
        try:
            tiles, source, output, options = self._request()
        except (ValueError, TypeError, ZarrTilerError) as error:
            show_error(f"Convert to zarr: {self._phrase(error)}")
            return
        # The run is registered before anything that processes events (the progress bar does),
        # so that a second click on Convert meanwhile is ignored.
        run = self._run = _Run()
        self.run_button.enabled = False
        self.cancel_button.enabled = True
        worker = self.worker = _conversion_worker(source, output, options, run.stop)
        worker.yielded.connect(run.advance)
        worker.returned.connect(self._on_done)
        worker.errored.connect(self._on_error)
        worker.finished.connect(partial(self._on_finished, run))
        run.open_bar(tiles)
        worker.start()

    def cancel(self, _event: Any = None) -> None:
        """Stop the running conversion; it removes what it wrote."""
        # The engine checks this between regions, removes its partial output and returns None.
        if self._run is not None:
            self._run.stop.set()

    def _phrase(self, error: Exception) -> str:
        """An error's message, in the widget's own words where the core names other controls."""
        if isinstance(error, DestinationExistsError) and error.path:
            return (
                f"{error.path} already exists; choose another output, or tick "
                f"'{self.overwrite.text}' to replace it"
            )
        return str(error)

    def _on_done(self, result: ConversionResult | _Failed | None) -> None:
        if isinstance(result, _Failed):
            self._on_error(result.error)
            return
        if result is None:
            show_info("Convert to zarr: cancelled; nothing was written")
            return
        show_info(f"Wrote {result.path} ({result.plan.describe()}) in {result.seconds:.1f} s")
        if self.open_result.value:
            self._viewer.open(str(result.path), plugin="napari-zarr-tiler")

    def _on_error(self, error: Exception) -> None:
        show_error(f"Convert to zarr failed: {self._phrase(error)}")

    def _on_finished(self, run: _Run) -> None:
        run.end()  # closes its bar now, or when the progress handler it interrupted returns
        if self._run is not run:
            return
        self._run = None
        self.worker = None
        self.run_button.enabled = True
        self.cancel_button.enabled = False
        self._update_info()


@thread_worker
def _conversion_worker(source: Any, output: Path, options: dict[str, Any], stop: threading.Event):
    """Run :func:`convert` on a helper thread and yield its progress; ``stop`` cancels it."""
    events: queue.Queue[Any] = queue.Queue()
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = convert(
                source, output, progress=events.put, cancel=stop, **options
            )
        except ConversionCancelled:
            outcome["result"] = None
        except Exception as error:  # handed back to the widget, shown as a notification
            outcome["error"] = error
        finally:
            events.put(_DONE)

    runner = threading.Thread(target=run, name="zarr-tiler-convert", daemon=True)
    runner.start()
    try:
        while True:
            event = events.get()
            if event is _DONE:
                break
            yield event
    finally:
        stop.set()  # also if the worker is quit: the engine stops between regions
        runner.join()
    # Errors come back as a value: the widget turns them into a notification (a raised error
    # would reach napari's exception hook as a traceback).
    return _Failed(outcome["error"]) if "error" in outcome else outcome.get("result")
