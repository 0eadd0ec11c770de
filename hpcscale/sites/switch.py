"""``--container``/``--no-container`` and ``--image``: a site with its container switched, its
image checked by the same refusals as a loaded descriptor (``hpcscale.sites.refusals``)."""

from __future__ import annotations

from collections.abc import Callable

from pydantic import ValidationError

from hpcscale.containers.runtimes.registry import get
from hpcscale.errors import UserError
from hpcscale.messages import describe
from hpcscale.sites.models import Container, Site
from hpcscale.sites.refusals import refuse


def switched(
    site: Site,
    enabled: bool | None,
    image: str | None,
    absolute: Callable[[str | None], str | None],
) -> Site:
    """``site`` with its container switched on or off (``--container``/``--no-container``) and
    ``--image`` for its image (which switches it on), validated again; an image path here (not
    a registry reference) goes through ``absolute``: ranks start elsewhere."""
    if image is not None:
        if enabled is False:
            raise UserError("--image runs the ranks in a container; drop --no-container")
        enabled = True
    if enabled and site.container.runtime == "none":
        raise UserError(
            f"site {site.name} has no container runtime; set container.runtime and "
            "container.image in its descriptor"
        )
    container = site.container
    if enabled is not None:
        container = container.model_copy(update={"enabled": enabled})
    if container.enabled:
        path = image if image is not None else container.image
        container = _checked(container, path, "--image" if image is not None else None, absolute)
    if container == site.container:
        return site
    where = "--image" if image is not None else "container.image"
    return refuse(site.model_copy(update={"container": container}), where)


def _checked(
    container: Container,
    path: str | None,
    option: str | None,
    absolute: Callable[[str | None], str | None],
) -> Container:
    try:
        checked = Container.model_validate({**container.model_dump(), "image": path})
    except ValidationError as exc:
        raise UserError(f"{option or 'container.image'}: {describe(exc, Container)}") from None
    if get(checked.runtime).local_image and path and "://" not in path:  # a path, not a reference
        return checked.model_copy(update={"image": absolute(path)})
    return checked


def engine_switched(site: Site, engine: str | None) -> Site:
    """``site`` with the study's engine (``--engine``; None: the descriptor's), so its ranks
    start the way that engine works here: on a machine whose ranks torchrun would start
    (launcher local), Horovod's are started by horovodrun (a rank of engine horovod under
    torchrun has no slots to join), and back."""
    if engine is None or engine == site.engine:
        return site
    update: dict[str, object] = {"engine": engine}
    if engine == "horovod" and site.launcher.kind == "local":
        update["launcher"] = site.launcher.model_copy(update={"kind": "horovodrun"})
    if engine != "horovod" and site.launcher.kind == "horovodrun":
        update["launcher"] = site.launcher.model_copy(update={"kind": "local"})
    try:
        return refuse(Site.model_validate({**site.model_dump(), **{
            k: v.model_dump() if hasattr(v, "model_dump") else v for k, v in update.items()
        }}), "--engine")  # fmt: skip
    except ValidationError as exc:
        raise UserError(f"--engine {engine}: {describe(exc, Site)}") from None
