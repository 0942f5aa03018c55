"""Generate a synthetic set and its infos + GT database once, idempotently.

A finished set carries ``<out>/synthetic_nuscenes.json`` (the generation arguments and a summary), written last.
Re-running with the same arguments on a finished set does nothing; any other non-empty ``out`` is refused
unless ``overwrite=True``, which first deletes what a previous run writes there (tables, samples, sweeps, maps,
infos, GT database, the marker) and nothing else.
"""
import json
import os
import os.path as osp
import shutil
import time

from .generator import generate_synthetic_nuscenes

MARKER = 'synthetic_nuscenes.json'
_GENERATED = ('v1.0-mini', 'v1.0-trainval', 'samples', 'sweeps', 'maps', MARKER)


def _generated_entries(out: str, extra_tag: str):
    for name in sorted(os.listdir(out)):
        if name in _GENERATED or name.startswith(f'{extra_tag}_'):
            yield osp.join(out, name)


def build_synthetic_dataset(out: str,
                            num_scenes: int,
                            seed: int = 0,
                            samples_per_scene: int = 8,
                            version: str = None,
                            num_val_scenes: int = None,
                            sweeps_per_keyframe: int = 9,
                            azimuth_steps: int = 1080,
                            with_infos: bool = True,
                            extra_tag: str = 'nuscenes',
                            overwrite: bool = False,
                            progress: bool = True) -> dict:
    """Generate (if needed) and return the marker contents: ``args``, ``summary``, ``seconds``."""
    args = dict(
        num_scenes=num_scenes,
        seed=seed,
        samples_per_scene=samples_per_scene,
        version=version,
        num_val_scenes=num_val_scenes,
        sweeps_per_keyframe=sweeps_per_keyframe,
        azimuth_steps=azimuth_steps,
        with_infos=with_infos,
        extra_tag=extra_tag)
    marker = osp.join(out, MARKER)
    if osp.isdir(out) and os.listdir(out):
        if osp.isfile(marker) and not overwrite:
            with open(marker) as f:
                done = json.load(f)
            if done.get('args') == args:
                print(f'{out} already holds a complete synthetic set with these arguments; nothing to do '
                      f'(pass --overwrite to regenerate)')
                return done
            raise FileExistsError(f'{out} holds a synthetic set made with different arguments {done.get("args")}; '
                                  f'pass --overwrite to replace it, or choose another --out')
        if not overwrite:
            raise FileExistsError(f'{out} is not empty and has no complete synthetic set ({MARKER} missing); pass '
                                  f'--overwrite to delete the generated parts and regenerate, or choose another --out')
        for path in _generated_entries(out, extra_tag):
            shutil.rmtree(path) if osp.isdir(path) else os.remove(path)
    start = time.time()
    if progress:
        print(
            f'generating {num_scenes} synthetic scenes x {samples_per_scene} key frames in {out} '
            '(tables, LiDAR sweeps, six camera images per sample)',
            flush=True)
    summary = generate_synthetic_nuscenes(
        out,
        num_scenes,
        seed=seed,
        samples_per_scene=samples_per_scene,
        version=version,
        num_val_scenes=num_val_scenes,
        sweeps_per_keyframe=sweeps_per_keyframe,
        azimuth_steps=azimuth_steps,
        progress=progress)
    gen_seconds = time.time() - start
    prep_seconds = {}
    if with_infos:
        from ..converters import prepare_nuscenes
        summary['files'] = prepare_nuscenes(out, out, summary['version'], extra_tag=extra_tag, seconds=prep_seconds)
    done = dict(
        args=args,
        summary=summary,
        seconds=dict(
            generate=round(gen_seconds, 2),
            **{
                k: round(v, 2)
                for k, v in prep_seconds.items()
            },
            total=round(time.time() - start, 2)))
    with open(marker, 'w') as f:
        json.dump(done, f, indent=1)
    return done
