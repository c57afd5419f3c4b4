"""What the experiment configs share: `parse_arg`, the typed parser of a config's argument string (as big_vision's
`bvcc.parse_arg`; `python main.py --config configs/cifar_lt.py:dataset=cifar10,imb=0.02` hands the config file's
`get_config` the string after the colon), and `Published`, the one record of a paper's number that a config's
`published(args)` (read by `ltjax.tools.table`) and its docstring (`published_doc`) are both made from."""

from __future__ import annotations

import dataclasses
from typing import Dict, Optional, Sequence, Tuple


@dataclasses.dataclass(frozen=True)
class Published:
  """A published result for one table cell. `top1` None means the paper has a number that could not be copied
  here: it is reported as missing, never guessed. `source` names paper/README, table and row; numbers that were
  recalled rather than copied say so in it ("recalled, unverified")."""
  top1: Optional[float]
  source: str
  many: Optional[float] = None
  medium: Optional[float] = None
  few: Optional[float] = None
  ece: Optional[float] = None

  def cell(self) -> dict:
    """The table runner's form: {'top1', 'source'} plus whichever of many/medium/few/ece the source gives."""
    out = {"top1": self.top1, "source": self.source}
    out.update({k: getattr(self, k) for k in ("many", "medium", "few", "ece") if getattr(self, k) is not None})
    return out

  def text(self) -> str:
    if self.top1 is None:
      return "missing"
    parts = [f"{self.top1:.2f}"]
    groups = [getattr(self, k) for k in ("many", "medium", "few")]
    if any(g is not None for g in groups):
      parts.append("(many/medium/few " + " / ".join("–" if g is None else f"{g:.1f}" for g in groups) + ")")
    if self.ece is not None:
      parts.append(f"ECE {self.ece:.2f}")
    return " ".join(parts)


def published_doc(table: Dict[Tuple, Published], fields: Sequence[str], what: str = "top-1 (%)") -> str:
  """The docstring block listing every entry of a config's PUBLISHED dict, grouped by source: the numbers a user
  reads in the docstring are the ones the table runner compares against."""
  by_source: Dict[str, list] = {}
  for key, p in table.items():
    key = key if isinstance(key, tuple) else (key,)
    by_source.setdefault(p.source, []).append(" ".join(f"{f}={k}" for f, k in zip(fields, key)) + f": {p.text()}")
  lines = [f"Published {what}, generated from PUBLISHED (what `published()` gives the table runner):"]
  for source, entries in by_source.items():
    lines.append(f"  {source}:")
    lines += [f"    {e}" for e in entries]
  return "\n".join(lines) + "\n"


def parse_arg(arg: str, **defaults) -> dict:
  """`'a=1,b=x,flag'` → {'a': 1, 'b': 'x', 'flag': True} over `defaults`, each value parsed as its default's type:
  str, int, float or bool ('1'/'true'/'yes' or a bare name for True, '0'/'false'/'no' for False). An unknown name or
  a value of the wrong type is a ValueError naming the argument and the choices."""
  out = dict(defaults)
  for item in filter(None, (arg or "").split(",")):
    key, eq, value = item.partition("=")
    key = key.strip()
    if key not in defaults:
      raise ValueError(f"unknown config argument '{key}' (known: {sorted(defaults)})")
    kind = type(defaults[key])
    if kind is bool:
      if not eq:
        out[key] = True
      elif value.lower() in ("1", "true", "yes"):
        out[key] = True
      elif value.lower() in ("0", "false", "no"):
        out[key] = False
      else:
        raise ValueError(f"config argument '{key}' is a flag: give '{key}', '{key}=1' or '{key}=0', not {value!r}")
    elif not eq:
      raise ValueError(f"config argument '{key}' needs a value: '{key}=...'")
    elif kind in (int, float):
      try:
        out[key] = kind(value)
      except ValueError:
        raise ValueError(f"config argument '{key}' must be {kind.__name__}, got {value!r}") from None
    else:
      out[key] = value
  return out
