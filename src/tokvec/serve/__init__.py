"""``tokvec serve``: a live explorer of every stage of a run, in the browser (docs/serve.md).

The views (:mod:`tokvec.serve.views`) are plain functions over a tokenizer and a model; the web app
(:mod:`tokvec.serve.app`, needs the ``serve`` extra: ``pip install 'tokvec[serve]'``) puts them
behind a small JSON API and a page with no build step and no network access.

    >>> from tokvec.serve import load_sources, views
    >>> src = load_sources(["runs/make-run"])[0]
    >>> views.tokens_view(src.tokenizer, "def f():")["count"]
"""

from .sources import Source, load_sources

__all__ = ["Source", "load_sources"]
