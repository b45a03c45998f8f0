"""Every example in the package's docstrings runs and prints what it says (doctest).

Readers copy these examples; one that no longer holds is a silent wrong answer. Each
module's examples run with ``torch`` and toygpt's public names in scope, as a reader
who did ``import torch`` and ``from toygpt import ...`` has them.
"""

import doctest
import importlib
import pkgutil

import pytest
import torch

import toygpt

MODULES = [m.name for m in pkgutil.iter_modules(toygpt.__path__)]
NAMES = {"torch": torch, **{name: getattr(toygpt, name) for name in toygpt.__all__}}


def examples(module):
    """How many examples of ``module`` doctest runs (``+SKIP`` ones are not run)."""
    tests = doctest.DocTestFinder().find(module, module.__name__, globs={})
    return sum(not e.options.get(doctest.SKIP) for t in tests for e in t.examples)


WITH_EXAMPLES = [
    name for name in MODULES if examples(importlib.import_module(f"toygpt.{name}"))
]


def test_the_package_has_examples():
    # the modules whose docstrings teach by example (a module losing all of its
    # examples by accident is caught here)
    assert {"exact", "filters", "language", "penalties", "sampling", "speculative"} <= (
        set(WITH_EXAMPLES)
    )


@pytest.mark.parametrize("name", WITH_EXAMPLES)
def test_docstring_examples_hold(name):
    module = importlib.import_module(f"toygpt.{name}")
    torch.manual_seed(0)
    result = doctest.testmod(module, extraglobs=dict(NAMES), report=True)
    assert result.attempted > 0 and result.failed == 0
