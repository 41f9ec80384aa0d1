import { Option } from 'commander';

/**
 * `--ipvs-rate-estimation on|off|keep` (apply, applier): IPVS's rate estimators, the sysctl
 * net.ipv4.vs.run_estimation of the node's netns. `keep` (the default) leaves the kernel's setting
 * as kube-proxy does; why an operator would turn them off, and what then reads zero:
 * docs/applier-ipvs.md "Rate estimation".
 */
export const ipvsRateEstimationOption = () =>
  new Option(
    '--ipvs-rate-estimation <on|off|keep>',
    "ipvs mode: IPVS rate estimators (net.ipv4.vs.run_estimation): on; off (the kernel stops walking every service and real server each 2 s; `ipvsadm -L --rate` reads 0 and the --stats counters stand still); keep the kernel's setting",
  )
    .choices(['on', 'off', 'keep'])
    .default('keep');

/** The dataplane's `ipvsRateEstimation` for the flag's value (undefined: leave the kernel's setting). */
export function ipvsRateEstimation(value: 'on' | 'off' | 'keep'): boolean | undefined {
  return value === 'keep' ? undefined : value === 'on';
}
