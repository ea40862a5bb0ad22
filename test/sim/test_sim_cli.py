"""``robot-vision sim-eval`` and ``python -m robot_vision.sim``: one option list, reports written, bad options."""

import json
import re
import subprocess
import sys

from robot_vision.cli import main


def test_sim_eval_writes_the_reports(tmp_path, capsys):
    out = tmp_path / 'eval'
    assert main(['sim-eval', '--scenes', '2', '--no-grasping', '--seed', '3', '--out', str(out)]) == 0
    captured = capsys.readouterr()
    assert '2/2 scenes' in captured.err                                  # the progress bar
    assert captured.out.startswith('# Simulation evaluation: 2 scenes, seed 3')
    report = json.loads((out / 'report.json').read_text())
    assert report['n_scenes'] == 2 and report['seed'] == 3 and report['frames_rendered'] == 2
    assert 'grasping' not in report and 'tracking' not in report
    assert report['render_fps'] > 0 and report['total_wall_time_s'] >= report['wall_time_s'] > 0
    percep = report['perception']['all']
    assert percep['gt_objects'] >= 2
    for key in ('recall_at_iou', 'precision_at_iou', 'box_recall_at_iou', 'box_precision_at_iou'):
        assert 0.0 <= percep[key] <= 1.0, key
    assert [row['scene'] for row in report['scenes']] == [0, 1]
    markdown = (out / 'report.md').read_text()
    assert markdown == captured.out.split('\nreports: ')[0]
    assert '| box recall | box precision |' in markdown and 'Closed-loop grasping' not in markdown


def test_sim_eval_rejects_bad_options(tmp_path, capsys):
    assert main(['sim-eval', '--clutter', 'isolated,heap', '--out', str(tmp_path / 'x'), '--quiet']) == 2
    assert 'clutter_levels' in capsys.readouterr().err
    assert main(['sim-eval', '--scenes', '0', '--out', str(tmp_path / 'x'), '--quiet']) == 2
    assert 'n_scenes' in capsys.readouterr().err
    assert main(['sim-eval', '--kinds', 'cup,mug', '--out', str(tmp_path / 'x'), '--quiet']) == 2
    assert 'EvaluationSettings.kinds' in capsys.readouterr().err
    assert not (tmp_path / 'x').exists()


def test_sim_eval_draws_the_kinds_asked_for(tmp_path):
    out = tmp_path / 'eval'
    assert main(['sim-eval', '--scenes', '1', '--clutter', 'clutter', '--kinds', 'cup', '--no-grasping',
                 '--out', str(out), '--quiet']) == 0
    kinds = json.loads((out / 'report.json').read_text())['perception']['by_kind']
    assert set(kinds) == {'cup'}


def _options(*command):
    text = subprocess.run([sys.executable, '-m', *command, '--help'], capture_output=True, text=True, check=True,
                          timeout=120).stdout
    return set(re.findall(r'(?<![\w-])--[a-z][a-z-]+', text))


def test_module_entry_point_has_the_same_options():
    """``python -m robot_vision.sim`` and ``robot-vision sim-eval`` share one option list."""
    module = _options('robot_vision.sim')
    sub_command = _options('robot_vision', 'sim-eval')
    assert module == sub_command
    assert {'--scenes', '--seed', '--out', '--noise', '--clutter', '--no-grasping', '--top-k', '--tracking-sequences',
            '--grasp-source', '--quiet', '--help'} <= module
