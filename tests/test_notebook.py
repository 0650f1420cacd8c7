"""notebooks/compare_losses.ipynb: it runs end to end on a tiny budget in this
environment's kernel and shows every registered loss; the committed copy is
a whole, clean run (its figures are a real run's, not what this test checks,
so a new loss needs no re-run of the notebook to pass)."""

import os
import sys

import nbclient
import nbformat
import pytest

from gan_jax import analysis
from gan_jax import losses
from gan_jax import report
from tests.helpers import REPO
from tests.helpers import toy_results
from tests.helpers import write_fid_run
from tests.helpers import write_image_run
from tests.helpers import write_json
from tests.helpers import write_sweep

NOTEBOOK = os.path.join(REPO, 'notebooks', 'compare_losses.ipynb')
LOSSES = tuple(losses.LOSSES)


def tagged(notebook, tag: str):
  """The one code cell with metadata tag `tag`."""
  (cell,) = [c for c in notebook.cells if tag in c.metadata.get('tags', ())]
  return cell


def markdown(cell) -> str:
  return '\n'.join(o['data']['text/markdown'] for o in cell.outputs
                   if 'text/markdown' in o.get('data', {}))


def text(cell) -> str:
  return ''.join(o.get('text', '') for o in cell.outputs if o.output_type == 'stream')


def images(cell) -> int:
  return sum('image/png' in o.get('data', {}) for o in cell.outputs)


def write_stabiliser_point(directory, loss, key, value) -> None:
  """A hand-made experiments/stabilisers.py sweep of one finished point, seeds 0 and 1."""
  point = f'loss.name-{loss}_{key}-{value}'
  section, name = key.split('.')
  write_json(os.path.join(directory, point, 'config.json'),
             {'loss': {'name': loss}, section: {name: value}, 'num_seeds': 2})
  write_json(os.path.join(directory, point, 'results.json'),
             toy_results([8, 8], [0.97, 0.95], [0.0, 0.01], seeds=[0, 1]))
  with open(os.path.join(directory, 'summary.csv'), 'w') as f:
    f.write(f'loss.name,{key},status,final_step,num_seeds,point\n'
            f'{loss},{value},finished,100,2,{point}\n')


@pytest.fixture(scope='module')
def executed(tmp_path_factory):
  """The notebook run by nbclient with 20 steps x 2 seeds per ring8 run, a
  hand-made sweep, MNIST, Stacked MNIST and held-out runs to show, and one
  extra cell printing the kernel's sys.prefix."""
  root = tmp_path_factory.mktemp('notebook')
  runs = root / 'runs'
  write_sweep(str(runs / 'compare_ring8'))
  write_stabiliser_point(str(runs / 'stabilisers_ring8'), 'vanilla', 'loss.r1_weight', 1.0)
  write_image_run(str(runs / 'mnist_vanilla'), ['step_300.png'],
                  {'fid_lenet': 518.0, 'precision': 0.78})
  write_fid_run(str(runs / 'fid_mnist_wgan_gp_1500'), 'wgan_gp', 1500, [51.8, 56.8],
                ['step_1500_seed0.png', 'step_1500_seed1.png'])
  stacked = os.path.join(REPO, 'experiments', 'stacked_mnist.py')
  for seed, kl in enumerate([0.05, 0.07]):  # the default row of its `:table` sweep
    workdir = str(runs / 'stacked_mnist_table' / f'seed-{seed}')
    write_image_run(workdir, ['step_500.png'], {'modes': 1000, 'reverse_kl': kl})
    write_json(os.path.join(workdir, 'config.json'), analysis.experiment_config(
        stacked + ':table', {'seed': seed}).to_dict())
  write_fid_run(str(runs / 'heldout_hinge'), 'hinge', 1500, [20.5, 22.5],
                ['step_1500_seed0.png'])
  write_fid_run(str(runs / 'heldout_hinge_seed2'), 'hinge', 1500, [24.5],
                ['step_1500.png'])  # a run per seed: one row, one grid
  env = {'GAN_JAX_NOTEBOOK_STEPS': '20', 'GAN_JAX_NOTEBOOK_SEEDS': '2',
         'GAN_JAX_NOTEBOOK_DATASETS': 'ring8',  # grid25's runs: the same code
         'GAN_JAX_NOTEBOOK_WORKDIR': str(root / 'notebook'),
         'GAN_JAX_NOTEBOOK_RUNS': str(runs),
         # Programs the six runs share (init, sampling, metrics) compile once.
         'JAX_COMPILATION_CACHE_DIR': str(root / 'jax_cache'),
         'JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS': '0',
         'JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES': '0'}
  notebook = nbformat.read(NOTEBOOK, as_version=4)
  notebook.cells.append(nbformat.v4.new_code_cell(
      'import sys\nprint(sys.prefix)', metadata={'tags': ['prefix']}))
  # Kernel 'python3', the notebook's: this environment's ipykernel.
  client = nbclient.NotebookClient(notebook, timeout=600, kernel_name='python3',
                                   resources={'metadata': {'path': str(root)}})
  client.execute(env={**os.environ, **env})
  return notebook


def test_the_notebook_runs_in_this_environment_and_shows_every_section(executed):
  assert text(tagged(executed, 'prefix')).strip() == sys.prefix
  assert text(tagged(executed, 'setup')).startswith(
      '2 seeds per run; ring8 20 steps;')

  training = markdown(tagged(executed, 'train'))
  table = markdown(tagged(executed, 'table'))
  for loss in LOSSES:
    assert f'| ring8 | {loss} | 2 |' in training and f'| ring8 | {loss} | 2 |' in table
  assert 'grid25' not in training + table
  assert table.startswith('| data | loss | seeds | modes | HQ % | reverse KL |')
  assert images(tagged(executed, 'samples')) == 1  # one figure per dataset
  assert images(tagged(executed, 'curves')) == 1

  sweep = tagged(executed, 'sweep')
  assert 'no sweep in' in text(sweep) and 'compare_grid25' in text(sweep)
  assert '| ring8 | vanilla | 2 | 7.0 ± 1.4 |' in markdown(sweep)
  assert '| ring8 | wgan_gp | 1 of 2, 1 pending |' in markdown(sweep)
  stabilisers = tagged(executed, 'stabilisers')
  assert 'no sweep of grid25' in text(stabilisers)
  assert '| vanilla | none | 2 | 7.0 ± 1.4 |' in markdown(stabilisers)
  assert '| vanilla | r1 | 2 | 8.0 ± 0.0 | 96.0 ± 1.4 |' in markdown(stabilisers)
  mnist = tagged(executed, 'mnist')
  assert '| wgan_gp | 1,500 | 2 | 54.3 ± 3.5 |' in markdown(mnist)
  assert images(mnist) == 1  # one figure of the runs' sample grids
  lenet = tagged(executed, 'mnist_lenet')
  assert '| fid_lenet | 518 |' in markdown(lenet) and images(lenet) == 1
  stacked = tagged(executed, 'stacked')
  # The t interval of 2 seeds' mean KL, -0.067 to 0.187, clipped at KL's 0.
  assert ('| default | 2 | 1000.0 [1000.0, 1000.0] | 0.060 [0.000, 0.187]'
          ' | 1000, 1000 | 0.050, 0.070 |') in markdown(stacked)
  assert images(stacked) == 1  # one figure: seed 0's grid of each row there
  held_out = tagged(executed, 'held_out')
  assert '| hinge | 1,500 | 3 | 22.5 ± 2.0 |' in markdown(held_out)
  assert images(held_out) == 1
  # After the runs' own tables, each table as `python -m gan_jax.report` left it.
  for tag, results_file, mark, own in (
      ('sweep', 'toy_losses.md', 'sweeps', '| ring8 | vanilla | 2 |'),
      ('stabilisers', 'stabilisers.md', 'stabilisers ring8', '| vanilla | r1 | 2 |'),
      ('stabilisers', 'stabilisers.md', 'stabilisers grid25', '| vanilla | r1 | 2 |'),
      ('mnist', 'inception_fid.md', 'fid fid_mnist_*', '| wgan_gp | 1,500 | 2 |'),
      ('stacked', 'stacked_mnist.md', 'stacked', '| default | 2 |'),
      ('held_out', 'inception_fid.md', 'fid heldout_*', '| hinge | 1,500 | 3 |')):
    shown = markdown(tagged(executed, tag))
    published = published_table(results_file, mark)
    assert published.startswith('| ') and published in shown, mark
    assert shown.index(own) < shown.rindex(published), mark
  assert images(tagged(executed, 'dirac')) == 1  # every loss, with and without R1
  assert 'no spectrum in' in text(tagged(executed, 'spectra'))
  assert 'the notebook ran in' in text(tagged(executed, 'end'))


def published_table(results_file, mark) -> str:
  return report.marked_table(os.path.join(REPO, 'docs', 'results', results_file), mark)


def test_with_no_runs_the_mnist_sections_show_the_published_tables_and_records(tmp_path):
  """A fresh clone (no runs/): each MNIST section shows its table of
  docs/results/ and the sample grids of the records kept beside it."""
  notebook = nbformat.read(NOTEBOOK, as_version=4)
  notebook.cells = [c for c in notebook.cells if {'setup', 'mnist', 'stacked', 'held_out'}
                    & set(c.metadata.get('tags', ()))]
  client = nbclient.NotebookClient(notebook, timeout=300, kernel_name='python3',
                                   resources={'metadata': {'path': str(tmp_path)}})
  client.execute(env={**os.environ, 'GAN_JAX_NOTEBOOK_RUNS': str(tmp_path / 'runs')})
  stacked = tagged(notebook, 'stacked')
  assert 'no Stacked MNIST sweep in' in text(stacked)
  assert published_table('stacked_mnist.md', 'stacked') in markdown(stacked)
  records = os.path.join(REPO, 'docs', 'results', 'runs', 'stacked_mnist_table', '*seed-0')
  assert any(analysis.latest_picture(r) for r in analysis.find_runs(records))
  assert images(stacked) == 1  # the rows' grids that the records keep
  held_out = tagged(notebook, 'held_out')
  assert 'no scored held-out MNIST run in' in text(held_out)
  assert published_table('inception_fid.md', 'fid heldout_*') in markdown(held_out)
  assert published_table('inception_fid.md', 'fid fid_mnist_*') in markdown(
      tagged(notebook, 'mnist'))


def test_the_committed_notebook_is_a_whole_clean_run():
  notebook = nbformat.read(NOTEBOOK, as_version=4)
  nbformat.validate(notebook)
  assert notebook.metadata.kernelspec.name == 'python3'
  code = [c for c in notebook.cells if c.cell_type == 'code']
  assert all(c.outputs and c.execution_count for c in code)
  assert [c.execution_count for c in code] == list(range(1, len(code) + 1))
  for cell in code:
    for output in cell.outputs:
      assert output.output_type != 'error', cell.source
      assert output.get('name') != 'stderr', output.text  # no log noise
  setup = text(tagged(notebook, 'setup'))
  # The default budget.
  assert setup.startswith('3 seeds per run; ring8 1000 steps, grid25 500 steps;')
  # A table each: of the runs there were, or as published in docs/results/.
  for tag in ('train', 'table', 'sweep', 'stabilisers', 'mnist', 'stacked', 'held_out'):
    assert any(line.startswith('| ') for line in
               markdown(tagged(notebook, tag)).splitlines()), tag
