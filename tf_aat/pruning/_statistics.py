"""What filter pruning did to the model, as a dict and as a readable table."""

import dataclasses

from tf_aat import _statistics


@dataclasses.dataclass
class PruningStatistics(_statistics.StatisticsText):
    """What filter pruning did to the model: FLOPs, parameters and filters, per layer and in all.

    Returned by `FilterPruningController.statistics()`. `str()` gives a short
    summary (totals, the largest channel groups, the groups left unpruned
    and why); `to_str(full=True)`, or `statistics(full=True)`, the table of
    every layer. `to_dict()` holds everything.

    The parameter totals count the model's own weights (masks are not
    parameters of the model they describe): `full_params` equals
    `count_params()` of the uncompressed model and `params` that of
    `ctrl.strip_model()`'s result.

    Attributes:
        rows: one dict per layer with weights: `name`, `type`, `full_flops`,
            `flops`, `full_params`, `params`, `full_channels`, `channels`.
        compression_rate: the rate asked for.
        pruning_level: the fraction of filters pruned in each group.
        prune_flops: whether the rate is a FLOPs reduction.
        groups: the channel groups (prunable or not, with the reasons).
        skipped: `(layer name, reason)` of layers left uncompressed.
        keep: the keep flags of each producer.
        full: whether `str()` gives the full table.
    """

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
    full: bool = False

    @property
    def full_flops(self):
        """FLOPs of the uncompressed model (2 per multiply-add)."""
        return sum(r["full_flops"] for r in self.rows)

    @property
    def flops(self):
        """FLOPs with the pruned filters removed."""
        return sum(r["flops"] for r in self.rows)

    @property
    def full_params(self):
        """Parameters of the uncompressed model (its `count_params()`)."""
        return sum(r["full_params"] for r in self.rows)

    @property
    def params(self):
        """Parameters left once the pruned filters are removed (the stripped model's `count_params()`)."""
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
        """Everything as plain JSON: the rates, FLOPs, parameter and filter totals, the groups
        not pruned (with the reasons), the skipped layers and one dict per layer (`layers`)."""
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

    def _group_rows(self):
        """One dict per prunable group: its layers, filters kept, parameters before and after."""
        by_name = {}
        for row in self.rows:
            by_name.setdefault(row["name"], row)
        result = []
        for group in self.groups:
            if not group.prunable:
                continue
            rows = [by_name[n] for n in group.names if n in by_name]
            keep = self.keep.get(id(group.units[0].layer))
            result.append(
                {
                    "layers": group.names,
                    "full_filters": group.filters,
                    "filters": int(keep.sum()) if keep is not None else group.filters,
                    "full_params": sum(r["full_params"] for r in rows),
                    "params": sum(r["params"] for r in rows),
                }
            )
        return result

    def _text(self, full):
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
        if full:
            lines.extend(self._layer_table())
            for group in d["not_prunable_groups"]:
                lines.append(
                    f"  not pruned: {', '.join(group['layers'])}: {'; '.join(group['reasons'])}"
                )
            for item in d["skipped_layers"]:
                lines.append(f"  left uncompressed: {item['layer']}: {item['reason']}")
            return "\n".join(lines)
        groups = self._group_rows()
        if groups:
            shown = _statistics.largest(groups, lambda g: g["full_params"])
            lines.append("  largest prunable groups (by parameters):")
            width = max(len(_statistics.names_list(g["layers"], 2)) for g in shown)
            width = max(width, len("layers"))
            lines.append(f"    {'layers':<{width}}  {'filters':>11}  {'parameters':>21}")
            for g in shown:
                filters = f"{g['filters']}/{g['full_filters']}"
                params = f"{g['params']:,}/{g['full_params']:,}"
                names = _statistics.names_list(g["layers"], 2)
                lines.append(f"    {names:<{width}}  {filters:>11}  {params:>21}")
            hint = _statistics.full_table_hint(len(shown), len(groups), "groups")
            if hint:
                lines.append(hint)
        # The groups left unpruned, one line per reason.
        by_reason = {}
        for group in d["not_prunable_groups"]:
            # Reasons read "<layer>: why"; the layer is listed beside them already.
            reasons = [_without_layer(r, group["layers"]) for r in group["reasons"]]
            by_reason.setdefault("; ".join(reasons), []).extend(group["layers"])
        for reason, names in by_reason.items():
            lines.append(f"  not pruned: {_statistics.names_list(names)}: {reason}")
        by_reason = {}
        for item in d["skipped_layers"]:
            by_reason.setdefault(item["reason"], []).append(item["layer"])
        for reason, names in by_reason.items():
            lines.append(f"  left uncompressed: {_statistics.names_list(names)}: {reason}")
        return "\n".join(lines)

    def _layer_table(self):
        width = max([len(r["name"]) for r in self.rows] + [5])
        lines = [f"  {'layer':<{width}}  {'type':<22} {'channels':>11} {'MFLOPs':>17}"]
        for r in self.rows:
            channels = f"{r['channels']}/{r['full_channels']}"
            flops = f"{r['flops'] / 1e6:.2f}/{r['full_flops'] / 1e6:.2f}"
            lines.append(f"  {r['name']:<{width}}  {r['type']:<22} {channels:>11} {flops:>17}")
        return lines


def _without_layer(reason, names):
    for name in names:
        if reason.startswith(f"{name}: "):
            return reason[len(name) + 2 :]
    return reason
