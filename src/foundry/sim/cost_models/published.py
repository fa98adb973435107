"""Published step-time coefficients: DistServe's simulator fits for OPT on A100-80GB.

Source: LLMServe/DistServe, `simdistserve/estimators/profile_data/profiler-a100-80g.distserve.json`
(Apache-2.0; Zhong et al., "DistServe", OSDI 2024). Times there are in milliseconds; stored here in ms
as published and converted to seconds. Prefill: A + B·Σl + C·Σl²; decode: a + b·Σctx + c·batch, with a
second decode row from batch 95 up. OPT-175B is left out: several of its published coefficients are
negative (its decode times would go below zero at some batch sizes).
"""

from __future__ import annotations

from dataclasses import dataclass

from foundry.sim.cost_models.fitted import LinearCostModel

SOURCE = ("DistServe simdistserve profiler-a100-80g.distserve.json (LLMServe/DistServe, Apache-2.0), "
          "fitted to OPT on A100-80GB SXM")


@dataclass(frozen=True)
class Published:
    model: str
    gpu: str
    tp: int
    prefill_ms: tuple[float, float, float]
    decode_small_ms: tuple[float, float, float]
    decode_large_ms: tuple[float, float, float]
    large_batch_threshold: int


TABLE: dict[str, Published] = {
    "opt-13b-a100": Published("opt-13b", "a100-80g", 1, (16.456860431694288, 0.09264750660897617,
                              6.474785740229194e-06), (19.934702624895458, 0.0006269356524350583,
                              0.03850697740828398), (7.1661889468253595, 0.0005798000403396046,
                              0.15831096191764046), 95),
    "opt-13b-a100-tp2": Published("opt-13b", "a100-80g", 2, (13.402703359246601, 0.06234291581603636,
                                  2.226884309113053e-06), (13.294796350285385, 0.00034109219700723494,
                                  0.06296393225243659), (10.638741913126715, 0.00031183369638295723,
                                  0.08562913604102729), 95),
    "opt-13b-a100-tp4": Published("opt-13b", "a100-80g", 4, (10.965724575862776, 0.034619455295915404,
                                  4.7511361198071533e-07), (10.256231678259395, 0.00018786702316166354,
                                  0.03269273629225551), (10.483514938375274, 0.00017120888562939117,
                                  0.04566648525887034), 95),
    "opt-66b-a100-tp2": Published("opt-66b", "a100-80g", 2, (39.14437589353578, 0.24929935185985747,
                                  2.0434584061063132e-05), (48.288015489286245, 0.0009424343535737985,
                                  0.12755020094383188), (28.727693993711597, 0.00047448475459061987,
                                  0.29617792360743994), 95),
    "opt-66b-a100-tp4": Published("opt-66b", "a100-80g", 4, (26.76512367065223, 0.1375928914774527,
                                  7.561318878163137e-06), (30.760284619429587, 0.000451947603788462,
                                  0.063284195750671), (27.47082137429487, 0.0004046845541646486,
                                  0.12480667738300383), 95),
}


def _s(coefs: tuple[float, float, float]) -> tuple[float, float, float]:
    return (coefs[0] / 1e3, coefs[1] / 1e3, coefs[2] / 1e3)


def published_cost_model(name: str) -> LinearCostModel:
    if name not in TABLE:
        raise ValueError(f"cost: unknown published model {name!r}; known: {', '.join(sorted(TABLE))}")
    p = TABLE[name]
    return LinearCostModel(_s(p.prefill_ms), _s(p.decode_small_ms), _s(p.decode_large_ms),
                           p.large_batch_threshold, name=name,
                           meta={"source": SOURCE, "model": p.model, "gpu": p.gpu, "tp": p.tp})
