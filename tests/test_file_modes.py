"""Written files take the umask's mode, not safetensors 0.8's 0600 (issue 15: prepared shards were 0600)."""

import os
import stat

import torch
from safetensors.torch import save_file

from t2iscale.data.prepare import _save_safetensors_atomic
from t2iscale.file_modes import restore_umask_mode, umask


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_prepared_safetensors_files_get_the_mode_of_any_new_file(tmp_path):
    old = os.umask(0o022)
    try:
        assert umask() == 0o022
        (tmp_path / "plain.json").write_text("{}")
        _save_safetensors_atomic(tmp_path / "shard.safetensors", {"x": torch.zeros(2)}, {"keys": "[]"})
        assert mode(tmp_path / "shard.safetensors") == mode(tmp_path / "plain.json") == 0o644

        save_file({"x": torch.zeros(2)}, str(tmp_path / "folder.safetensors"))
        nested = tmp_path / "nested"
        nested.mkdir()
        save_file({"x": torch.zeros(2)}, str(nested / "weights.safetensors"))
        os.umask(0o027)  # a group-readable lab setting
        restore_umask_mode(tmp_path / "folder.safetensors", nested)
        assert mode(tmp_path / "folder.safetensors") == mode(nested / "weights.safetensors") == 0o640
    finally:
        os.umask(old)
