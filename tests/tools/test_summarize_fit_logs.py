"""tools/analysis_tools/summarize_fit_logs.py on hand-written two-segment logs (a run interrupted and resumed)."""
import json
import os.path as osp
import subprocess
import sys

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = 'tools/analysis_tools/summarize_fit_logs.py'
P = 'NuScenes metric/pred_instances_3d_NuScenes/'


def _val(stamp, epoch, m_ap, nds):
    return (f'{stamp} - mmengine - INFO - Epoch(val) [{epoch}][16/16]    '
            f'{P}car_AP_dist_0.5: 0.1  {P}NDS: {nds}  {P}mAP: {m_ap}\n')


def _train(stamp, epoch, it):
    return f'{stamp} - mmengine - INFO - Epoch(train)  [{epoch}][{it:3d}/158]  lr: 1e-4  time: 0.2  loss: 5.0\n'


def test_two_segments_first_pass_iteration_and_minutes(tmp_path):
    seg1 = tmp_path / 'seg1.log'
    seg1.write_text('12/31 23:50:00 - mmengine - INFO - Config:\nnot a log line\n' + _train('12/31 23:52:00', 1, 158) +
                    _val('12/31 23:53:00', 1, 0.5, 0.4) + _train('12/31 23:55:00', 2, 20))  # killed: 5 min segment
    seg2 = tmp_path / 'seg2.log'
    seg2.write_text('01/01 00:10:00 - mmengine - INFO - resumed epoch: 1, iter: 158\n' +
                    _val('01/01 00:12:30', 2, 0.85, 0.7) + _val('01/01 00:14:00', 3, 0.93, 0.8) +
                    '01/01 00:14:00 - mmengine - INFO - Stopping threshold reached\n')
    out = tmp_path / 'summary'
    res = subprocess.run(
        [sys.executable, TOOL, '--run', 'path',
         str(seg1), str(seg2), '--year', '2025', '--out',
         str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True)
    assert res.returncode == 0, res.stderr
    run = json.load(open(str(out) + '.json'))[0]
    assert [s['minutes'] for s in run['segments']] == [5.0, 4.0]
    assert [e['epoch'] for e in run['evaluations']] == [1, 2, 3]
    reached = run['reached']
    # first evaluation above 0.9: epoch 3 = 474 iterations (158 per epoch, from the first segment's lines),
    # 5 min (segment 1) + 4 min into segment 2 (00:10 -> 00:14)
    assert reached['epoch'] == 3 and reached['iteration'] == 3 * 158 and reached['mAP'] == 0.93
    assert reached['wall_minutes'] == 9.0
    assert '| path | 3 | 474 | 9.0 | 0.9300 | 0.8000 | 5.0 + 4.0 |' in open(str(out) + '.md').read()


def test_not_reached_and_bad_log_are_reported(tmp_path):
    log = tmp_path / 'a.log'
    log.write_text(_train('05/01 10:00:00', 1, 158) + _val('05/01 10:01:00', 1, 0.4, 0.3))
    res = subprocess.run([sys.executable, TOOL, '--run', 'x', str(log)], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0 and 'not reached (best 0.4000)' in res.stdout
    empty = tmp_path / 'empty.log'
    empty.write_text('nothing here\n')
    res = subprocess.run([sys.executable, TOOL, '--run', 'x', str(empty)], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode != 0 and 'no mmengine log line' in res.stderr


def test_plot_draws_each_evaluation_at_its_iteration(tmp_path):
    from tools.analysis_tools import summarize_fit_logs
    log = tmp_path / 'run.log'
    log.write_text(
        _train('03/01 10:00:00', 1, 100) + _val('03/01 10:01:00', 1, 0.2, 0.3) + _train('03/01 10:02:00', 2, 100) +
        _val('03/01 10:03:00', 2, 0.45, 0.5))
    runs = [summarize_fit_logs.summarize('bias', [str(log)], 0.5, 2026)]
    png = tmp_path / 'map.png'
    drawn = summarize_fit_logs.plot_runs(runs, str(png))
    # 158 iterations per epoch come from the train lines; evaluations after epochs 1 and 2
    assert drawn == {'bias': {'iteration': [158, 316], 'mAP': [0.2, 0.45], 'NDS': [0.3, 0.5]}}
    assert png.stat().st_size > 5000
