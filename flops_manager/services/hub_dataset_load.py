"""The child that loads a hub dataset: `python -m flops_manager.services.hub_dataset_load`.

Arguments: the repo id, the split and the parquet file to write. The Hugging Face libraries
take the endpoint, offline mode, timeouts and cache from the environment the manager gives
this process (`HubAccess.child_environment`). Exit codes: 0 written; 2 the hub has no such
dataset or split; 3 the hub cannot be reached; 1 anything else. On failure the last line on
stderr says why, in one sentence.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main"]

_NOT_FOUND, _UNREACHABLE, _OTHER = 2, 3, 1


def _unreachable(error: BaseException) -> bool:
    """Whether `error`, or an error it was raised from, says the hub could not be reached."""
    import httpx
    from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled

    seen: BaseException | None = error
    while seen is not None:
        if isinstance(
            seen,
            httpx.TransportError | LocalEntryNotFoundError | OfflineModeIsEnabled | ConnectionError,
        ):
            return True
        seen = seen.__cause__ or seen.__context__
    return "Couldn't reach" in str(error) or "cannot find the requested files" in str(error)


def main(argv: Sequence[str] | None = None) -> int:
    """Load `split` of hub dataset `repo_id` and write it to `out` with `to_parquet`."""
    repo_id, split, out = argv if argv is not None else sys.argv[1:]
    import datasets
    from datasets.exceptions import DatasetNotFoundError
    from huggingface_hub.errors import RepositoryNotFoundError

    datasets.disable_progress_bars()
    try:
        dataset = datasets.load_dataset(repo_id, split=split)
    except (DatasetNotFoundError, RepositoryNotFoundError) as e:
        if _unreachable(e):
            print(f"the hub cannot be reached: {e}", file=sys.stderr)
            return _UNREACHABLE
        print(f"the hub has no dataset {repo_id!r}: {e}", file=sys.stderr)
        return _NOT_FOUND
    except ValueError as e:  # e.g. Unknown split "train"
        print(f"{type(e).__name__}: {e}".replace("\n", " "), file=sys.stderr)
        return _NOT_FOUND
    except Exception as e:
        code = _UNREACHABLE if _unreachable(e) else _OTHER
        print(f"{type(e).__name__}: {e}".replace("\n", " "), file=sys.stderr)
        return code
    dataset.to_parquet(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
