"""What filter pruning did to the model, as a dict and as a readable table."""

import dataclasses


@dataclasses.dataclass
class PruningStatistics:
    rows: list
    compression_rate: float
    pruning_level: float
    prune_flops: bool
    groups: list
    skipped: list
    keep: dict
    # What the masks achieve, in the rate's meaning (FLOPs reduction or level applied).
    achieved_compression_rate: float | None = None
    # The most pruning can reach, set when `compression_rate` asks for more.
    reachable_compression_rate: float | None = None

    @property
    def full_flops(self):
        return sum(r["full_flops"] for r in self.rows)

    @property
    def flops(self):
        return sum(r["flops"] for r in self.rows)

    @property
    def full_params(self):
        return sum(r["full_params"] for r in self.rows)

    @property
    def params(self):
        return sum(r["params"] for r in self.rows)

    def _filters(self):
        full = current = 0
        for group in self.groups:
            for unit in group.units:
                full += unit.filters
                keep = self.keep.get(id(unit.layer))
                current += int(keep.sum()) if keep is not None else unit.filters
        return full, current

    def to_dict(self):
        full_filters, filters = self._filters()
        flops_reduction = 1.0 - self.flops / self.full_flops if self.full_flops else 0.0
        achieved = self.achieved_compression_rate
        if achieved is None:
            achieved = flops_reduction if self.prune_flops else self.pruning_level
        return {
            "algorithm": "filter_pruning",
            "compression_rate": self.compression_rate,
            "achieved_compression_rate": achieved,
            "target_reached": achieved >= self.compression_rate - 1e-6,
            "reachable_compression_rate": self.reachable_compression_rate,
            "pruning_level": self.pruning_level,
            "rate_means": "flops_reduction" if self.prune_flops else "pruning_level",
            "full_flops": self.full_flops,
            "current_flops": self.flops,
            "flops_reduction": flops_reduction,
            "full_params": self.full_params,
            "current_params": self.params,
            "params_reduction": 1.0 - self.params / self.full_params if self.full_params else 0.0,
            "full_filters": full_filters,
            "current_filters": filters,
            "prunable_groups": sum(1 for g in self.groups if g.prunable),
            "not_prunable_groups": [
                {"layers": g.names, "reasons": g.reasons} for g in self.groups if not g.prunable
            ],
            "skipped_layers": [{"layer": n, "reason": r} for n, r in self.skipped],
            "layers": [dict(r) for r in self.rows],
        }

    def __str__(self):
        d = self.to_dict()
        lines = [
            "Filter pruning statistics",
            f"  compression rate: {d['compression_rate']:.4f} asked, "
            f"{d['achieved_compression_rate']:.4f} achieved ({d['rate_means']}), "
            f"pruning level: {d['pruning_level']:.4f}",
            f"  FLOPs:      {d['current_flops']:,} / {d['full_flops']:,} "
            f"({100 * d['flops_reduction']:.1f}% removed)",
            f"  parameters: {d['current_params']:,} / {d['full_params']:,} "
            f"({100 * d['params_reduction']:.1f}% removed)",
            f"  filters:    {d['current_filters']:,} / {d['full_filters']:,} in "
            f"{d['prunable_groups']} prunable groups",
        ]
        if not d["target_reached"]:
            reachable = d["reachable_compression_rate"]
            lines.insert(
                2,
                "  target not reached: "
                + (
                    "nothing is prunable"
                    if not d["prunable_groups"]
                    else f"at most {reachable:.4f} is reachable"
                    if reachable is not None
                    else "the masks prune less than asked"
                ),
            )
        width = max([len(r["name"]) for r in self.rows] + [5])
        lines.append(f"  {'layer':<{width}}  {'type':<22} {'channels':>11} {'MFLOPs':>17}")
        for r in self.rows:
            channels = f"{r['channels']}/{r['full_channels']}"
            flops = f"{r['flops'] / 1e6:.2f}/{r['full_flops'] / 1e6:.2f}"
            lines.append(f"  {r['name']:<{width}}  {r['type']:<22} {channels:>11} {flops:>17}")
        for group in d["not_prunable_groups"]:
            lines.append(
                f"  not pruned: {', '.join(group['layers'])}: {'; '.join(group['reasons'])}"
            )
        for item in d["skipped_layers"]:
            lines.append(f"  left uncompressed: {item['layer']}: {item['reason']}")
        return "\n".join(lines)
