"""``folder_paths`` as packs use it: model folders and the output/input/temp folders.

Folders live under $HOMEPILOT_HOME (models/<kind>, files, input, temp): the input folder is
the one uploads go to and LoadImage lists (``Settings.input_dir``).
"""

from __future__ import annotations

import os
from pathlib import Path

from engine.settings import get_settings

supported_pt_extensions = {".ckpt", ".pt", ".pt2", ".bin", ".pth", ".safetensors", ".pkl", ".sft"}


def _home() -> Path:
    return get_settings().home


def get_output_directory() -> str:
    return str(_home() / "files")


def get_input_directory() -> str:
    return str(get_settings().input_dir)


def get_temp_directory() -> str:
    return str(_home() / "temp")


def get_folder_paths(folder_name: str) -> list[str]:
    return [str(_home() / "models" / folder_name)]


def get_filename_list(folder_name: str) -> list[str]:
    names: list[str] = []
    for folder in get_folder_paths(folder_name):
        if os.path.isdir(folder):
            for root, _dirs, files in os.walk(folder):
                names.extend(os.path.relpath(os.path.join(root, f), folder) for f in files
                             if not f.startswith("."))
    return sorted(names)


def get_full_path(folder_name: str, filename: str) -> str | None:
    for folder in get_folder_paths(folder_name):
        candidate = os.path.realpath(os.path.join(folder, filename))
        if candidate.startswith(os.path.realpath(folder) + os.sep) and os.path.isfile(candidate):
            return candidate
    return None


def get_annotated_filepath(name: str) -> str:
    return os.path.join(get_input_directory(), name)


def exists_annotated_filepath(name: str) -> bool:
    return os.path.exists(get_annotated_filepath(name))
