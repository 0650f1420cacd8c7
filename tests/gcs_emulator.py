"""The GCS emulator the tests run: gcp-storage-emulator, taught the parts of
GCS's JSON API that TensorStore (Orbax's checkpoints) and gan_jax's lock rely
on and that it lacks:

- a download answers with the object's generation (`x-goog-generation`),
  which TensorStore reads back for every object it writes;
- the generation preconditions: `ifGenerationMatch` on an upload (0: only if
  the object does not exist), a download and a delete, `ifGenerationNotMatch`
  on a download (304 when it matches), as
  https://cloud.google.com/storage/docs/request-preconditions describes.

The server handles one request at a time, so a precondition's check and the
write it guards are atomic, as on GCS.

  python tests/gcs_emulator.py start --host=127.0.0.1 --port=PORT --in-memory \
      --default-bucket=NAME
"""

from http import HTTPStatus
import sys

from gcp_storage_emulator import storage as storage_lib
from gcp_storage_emulator.exceptions import NotFound
from gcp_storage_emulator.handlers import objects

_expected = {}  # the generation the upload being handled requires


class _PreconditionFailed(Exception):
  pass


def _generation(storage, bucket: str, name: str) -> str:
  """The object's generation, '0' when there is no such object."""
  try:
    return str(storage.get_file_obj(bucket, name)['generation'])
  except NotFound:
    return '0'


def _create_file(self, bucket_name, file_name, content, file_obj, file_id=None,
                 _create=storage_lib.Storage.create_file):
  wanted = _expected.get('generation')
  if wanted is not None and _generation(self, bucket_name, file_name) != wanted:
    raise _PreconditionFailed(file_name)
  return _create(self, bucket_name, file_name, content, file_obj, file_id)


def _insert(request, response, storage, *args, _insert=objects.insert, **kwargs):
  _expected['generation'] = (request.query.get('ifGenerationMatch') or [None])[0]
  try:
    return _insert(request, response, storage, *args, **kwargs)
  except _PreconditionFailed:
    response.status = HTTPStatus.PRECONDITION_FAILED
    response.json({'error': {'code': 412, 'message': 'Precondition Failed'}})
  finally:
    _expected.clear()


def _download(request, response, storage, *args, _download=objects.download,
              **kwargs):
  bucket, name = request.params['bucket_name'], request.params['object_id']
  current = _generation(storage, bucket, name)
  match = (request.query.get('ifGenerationMatch') or [None])[0]
  not_match = (request.query.get('ifGenerationNotMatch') or [None])[0]
  if current != '0':
    if match is not None and match != current:
      response.status = HTTPStatus.PRECONDITION_FAILED
      return None
    if not_match is not None and not_match == current:
      response.status = HTTPStatus.NOT_MODIFIED
      response['x-goog-generation'] = current
      return None
  result = _download(request, response, storage, *args, **kwargs)
  if current != '0':
    response['x-goog-generation'] = current
  return result


def _delete(request, response, storage, *args, _delete=objects.delete, **kwargs):
  match = (request.query.get('ifGenerationMatch') or [None])[0]
  current = _generation(storage, request.params['bucket_name'],
                        request.params['object_id'])
  if match is not None and current != '0' and match != current:
    response.status = HTTPStatus.PRECONDITION_FAILED
    return None
  return _delete(request, response, storage, *args, **kwargs)


def main() -> None:
  storage_lib.Storage.create_file = _create_file
  objects.insert = _insert
  objects.download = _download
  objects.delete = _delete
  from gcp_storage_emulator import __main__ as emulator  # noqa: PLC0415 (after the patches: its routes name the handlers)
  emulator.main(sys.argv[1:])


if __name__ == '__main__':
  main()
