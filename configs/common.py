"""What the experiment configs share: `parse_arg`, the typed parser of a config's argument string (as big_vision's
`bvcc.parse_arg`). `python main.py --config configs/cifar_lt.py:dataset=cifar10,imb=0.02` hands the config file's
`get_config` the string after the colon."""


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
