"""Reference epsilons from Google's dp-accounting RdpAccountant (used by tests/accountant_oracle.rs).

Reads JSON from stdin: {"grid": [{"q":..., "sigma":..., "steps":..., "delta":...}, ...],
"gaussian": [{"sigma":..., "epsilon":...}, ...]} and prints
{"rdp": [eps, ...], "gaussian_delta": [delta, ...], "version": "..."}.
"""
import json
import sys

import dp_accounting
from dp_accounting import dp_event
from dp_accounting.rdp import rdp_privacy_accountant as rdp


def main():
    req = json.load(sys.stdin)
    out = {"rdp": [], "gaussian_delta": [], "version": getattr(dp_accounting, "__version__", "?")}
    for g in req.get("grid", []):
        acc = rdp.RdpAccountant()  # default orders, ADD_OR_REMOVE_ONE
        event = dp_event.SelfComposedDpEvent(
            dp_event.PoissonSampledDpEvent(g["q"], dp_event.GaussianDpEvent(g["sigma"])),
            g["steps"],
        )
        acc.compose(event)
        out["rdp"].append(acc.get_epsilon(g["delta"]))
    for g in req.get("gaussian", []):
        # Exact delta(epsilon) of the Gaussian mechanism via the PLD accountant (sensitivity 1).
        from dp_accounting.pld import privacy_loss_distribution as pld

        dist = pld.from_gaussian_mechanism(g["sigma"], sensitivity=1.0, value_discretization_interval=1e-5)
        out["gaussian_delta"].append(dist.get_delta_for_epsilon(g["epsilon"]))
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
