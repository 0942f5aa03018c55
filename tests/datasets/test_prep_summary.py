"""create_data's end-of-run summary counts what the info and GT-database files hold."""
import json
import os.path as osp
import pickle


def test_prep_summary_counts_samples_boxes_and_database_objects(synthetic_root, nusc):
    from projects.mmdet3d_plugin.datasets.converters.prep_summary import prep_summary
    with open(osp.join(synthetic_root, 'synthetic_nuscenes.json')) as f:
        files = json.load(f)['summary']['files']
    text = prep_summary(files, dict(infos=1.25, gt_database=2.5))
    counts = {}
    for path in files['infos']:
        with open(path, 'rb') as f:
            infos = pickle.load(f)['data_list']
        counts[path] = len(infos)
        boxes = sum(len(i['instances']) for i in infos)
        assert f'{path}: {len(infos)} samples, {boxes} annotated boxes' in text
    assert sum(counts.values()) == len(nusc.sample)  # every key frame is in exactly one split
    with open(files['dbinfos'], 'rb') as f:
        db = pickle.load(f)
    total = sum(len(v) for v in db.values())
    crops = sum(1 for v in db.values() for r in v if r['image_path'])
    assert f'{total} GT-database objects ({crops} with an image crop)' in text
    for name, recs in db.items():
        assert f'{name} {len(recs)}' in text
    assert 'time: infos 1.2 s, gt_database 2.5 s' in text
