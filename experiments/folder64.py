"""Your own images at 64x64 RGB: Miyato et al. 2018's 64x64 ResNets with the
SNGAN recipe of experiments/cifar10_sngan.py.

  python -m gan_jax.main --config=experiments/folder64.py \
      --config.data.path=MY_IMAGES --workdir=runs/folder64
  # then Inception FID of 10k samples against your images, read as training
  # read them:
  python -m gan_jax.fid MY_IMAGES runs/folder64 --resolution=64 --num=10000

Every PNG, JPEG, WebP or BMP under `data.path` (recursive; subfolders are
read as class labels), centre-cropped to a square and resized to 64x64
(Lanczos, as StyleGAN's dataset tool), as RGB. The model is `resnet` at
64x64 (models/resnet.py: G from 4x4 through four up-sampling blocks of 512,
256, 128 and 64 channels, D of five down-sampling blocks of 64 to 1024; 12.2M
and 10.1M parameters at latent 128, as mimicry's sngan_64), trained as mimicry
trains its SNGAN baselines: hinge loss, spectral norm on D, Adam 2e-4 with
(0, 0.9), 5 D steps per G step, batch 64, both learning rates decayed
linearly to 0.

Variants (`--config=experiments/folder64.py:NAME`):
- `goal` (default): the recipe above, 100k G steps (an accelerator's work:
  a G step with its 5 D steps takes seconds on 2 CPU cores).
- `small`: a quarter of the widths (G from 256, D to 256; about 1/16 of the
  parameters), 20k G steps: a first look on a CPU or a small GPU.

Nothing here was trained to a published figure: the project has no 64x64
dataset on its machines. What is checked: the models' parameter counts equal
mimicry's sngan_64 (tests/test_models.py), and this config reads a folder of
photos of other sizes as 64x64 RGB for them (tests/test_folder.py).
"""

from gan_jax import configs

VARIANTS = ('goal', 'small')


def get_config(variant: str = 'goal'):
  configs.check_variant('experiments/folder64.py', variant, VARIANTS)
  c = configs.default_config()
  c.data.name = 'folder'
  c.data.path = ''  # set --config.data.path=DIR
  c.data.resolution = 64
  c.data.channels = 3
  c.model.name = 'resnet'  # Miyato et al. 2018's 64x64 networks
  c.model.latent_dim = 128
  c.model.spectral_norm = True
  c.loss.name = 'hinge'
  c.optim.g_lr = c.optim.d_lr = 2e-4
  c.optim.b1, c.optim.b2 = 0.0, 0.9
  c.optim.schedule = 'linear'  # to 0 by the last step
  c.train.d_steps = 5
  c.train.batch_size = 64
  c.train.num_steps = 100_000  # G steps
  c.train.log_every = 500
  c.train.sample_every = 5000
  c.train.checkpoint_every = 5000
  if variant == 'small':
    c.model.g_channels = c.model.d_channels = 256
    c.train.num_steps = 20_000
    c.train.sample_every = c.train.checkpoint_every = 2000
  return c
