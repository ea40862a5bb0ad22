"""Run every benchmark module (benchmarks/bench_*.py), print a table and write JSON.

Usage: python -m benchmarks [--only SUBSTRING] [--quick] [--json PATH]
"""

import argparse
import importlib
import json
import platform
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog='python -m benchmarks', description=__doc__.splitlines()[0])
    parser.add_argument('--only', default='', help='run only modules whose name contains this')
    parser.add_argument('--quick', action='store_true', help='fewer repetitions (a smoke run)')
    parser.add_argument('--json', default='artifacts/benchmarks.json', help='where to write results')
    args = parser.parse_args(argv)
    modules = sorted(p.stem for p in HERE.glob('bench_*.py') if args.only in p.stem)
    if not modules:
        print(f'no benchmark module matches {args.only!r}', file=sys.stderr)
        return 2
    results = []
    for name in modules:
        print(f'# {name}', flush=True)
        module = importlib.import_module(f'benchmarks.{name}')
        for result in module.run(quick=args.quick):
            result['module'] = name
            results.append(result)
            print(format_row(result), flush=True)
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {'python': platform.python_version(), 'machine': platform.machine(),
            'processor': platform.processor(), 'cpus': __import__('os').cpu_count()}
    out.write_text(json.dumps({'meta': meta, 'results': results}, indent=2))
    print(f'\nwrote {out}')
    failed = [r['name'] for r in results if r.get('ok') is False]
    if failed:
        print('over target: ' + ', '.join(failed))
    return 0


def format_row(result) -> str:
    extra = ''
    if 'p95_ms' in result:
        extra = f"  p95 {result['p95_ms']:.3f} ms"
    target = f"  target {result['target']}" if result.get('target') else ''
    flag = {True: '  ok', False: '  OVER'}.get(result.get('ok'), '')
    return f"  {result['name']:<58} {result['value']:>10.3f} {result['unit']:<6}{extra}{target}{flag}"


if __name__ == '__main__':
    sys.exit(main())
