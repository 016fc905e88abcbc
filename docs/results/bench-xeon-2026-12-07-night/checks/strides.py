import sys, torch
from torch.utils._python_dispatch import TorchDispatchMode
from slac import runtime
from slac.config import Config, resolve, with_preset
from slac.agent import SLACAgent
from slac.bench import synthetic_replay
preset, amp = sys.argv[1], sys.argv[2] == "amp"
cfg = resolve(Config(task="cheetah-run", amp=amp) if preset == "paper" else Config(**with_preset({"preset": preset, "task": "ball_in_cup-catch", "amp": amp})))
device = runtime.set_up("cpu", 1, 0)
agent = SLACAgent(cfg, 6, device)
rep = synthetic_replay(cfg, 6)
b = rep.sample(cfg.batch_size, cfg.sequence_length).rows(0, cfg.model_batch_size // 2)
def layout(t):
    if not isinstance(t, torch.Tensor) or t.dim() != 4: return "-"
    if t.is_contiguous(): return "nchw"
    if t.is_contiguous(memory_format=torch.channels_last): return "cl"
    return "other" + str(t.stride())
class M(TorchDispatchMode):
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = str(func)
        ts = [a for a in args if isinstance(a, torch.Tensor) and a.dim() == 4]
        if len(ts) >= 2 and len({layout(t) for t in ts}) > 1 and "convolution" not in name:
            print(name, [(tuple(t.shape), layout(t), str(t.dtype)[6:]) for t in ts])
        return func(*args, **(kwargs or {}))
f, post = agent.model_posterior(b)
with M():
    f, post = agent.model_posterior(b); agent.model_step(b, post)
