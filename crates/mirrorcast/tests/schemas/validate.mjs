// Reads a JSON array of Kubernetes objects on stdin and validates each Prometheus Operator
// object (PodMonitor, ServiceMonitor, PrometheusRule) against its CRD's schema. Prints one line
// per object; exits 1 if any is invalid or of a kind it does not know.
import { readFileSync } from "node:fs";
import { PodMonitor, ServiceMonitor, PrometheusRule } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1";

const models = { PodMonitor, ServiceMonitor, PrometheusRule };
let failed = false;
for (const object of JSON.parse(readFileSync(0, "utf8"))) {
  const name = `${object.kind}/${object.metadata?.name}`;
  const Model = object.apiVersion === "monitoring.coreos.com/v1" && models[object.kind];
  if (!Model) {
    console.log(`${name}: no schema here for ${object.apiVersion}`);
    failed = true;
    continue;
  }
  try {
    new Model(object).validate();
    console.log(`${name}: valid`);
  } catch (error) {
    console.log(`${name}: ${error.message}`);
    failed = true;
  }
}
process.exit(failed ? 1 : 0);
