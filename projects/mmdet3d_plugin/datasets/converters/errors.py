"""Data-preparation errors that name the bad path and the command that creates it."""


class DataPrepError(FileNotFoundError):
    """A nuScenes root, table, sensor file or info file is missing or unreadable."""


def hint_for(root: str, version: str = 'v1.0-trainval') -> str:
    """The commands that create what a data root should contain."""
    return (f'Download nuScenes {version} into {root!r} and run `python tools/create_data.py nuscenes '
            f'--root-path {root} --out-dir {root} --version {version}`, or generate a synthetic set with '
            f'`python tools/create_data.py synthetic --out {root}`.')
