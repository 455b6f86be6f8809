"""Hatch build hook: puts the engine module into the package.

Copies ``$BUNTING_CORE_WASM`` (or ``<repo>/target/wasm/bunting_core_abi.wasm``,
what ``cargo xtask wasm`` writes) to ``src/bunting/bunting_core_abi.wasm``
before a build. A build from an sdist finds the copy already there. Fails the
build if there is no module, so no wheel ever ships without its engine.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

MODULE = "bunting_core_abi.wasm"


class CustomBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        root = Path(self.root)
        dest = root / "src" / "bunting" / MODULE
        candidates = []
        if os.environ.get("BUNTING_CORE_WASM"):
            candidates.append(Path(os.environ["BUNTING_CORE_WASM"]))
        if os.environ.get("BUNTING_TARGET_DIR"):
            candidates.append(Path(os.environ["BUNTING_TARGET_DIR"]) / "wasm" / MODULE)
        candidates.append(root.parent.parent / "target" / "wasm" / MODULE)
        for src in candidates:
            if src.is_file():
                if not dest.is_file() or src.read_bytes() != dest.read_bytes():
                    shutil.copyfile(src, dest)
                break
        if not dest.is_file():
            tried = ", ".join(str(c) for c in candidates)
            raise RuntimeError(
                f"no engine module to package (tried {tried}); run `cargo xtask wasm` "
                "or set BUNTING_CORE_WASM"
            )
        # Pure Python + a portable .wasm: one wheel for every platform.
        build_data["pure_python"] = True
