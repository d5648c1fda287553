{{/* Names and labels shared by every object of a release. */}}
{{- define "mirrorcast.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "mirrorcast.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "mirrorcast.labels" -}}
{{ include "mirrorcast.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* Selects the release's series in PromQL: the monitors copy the pods' instance label. */}}
{{- define "mirrorcast.promSelector" -}}
namespace="{{ .Release.Namespace }}", app_kubernetes_io_instance="{{ .Release.Name }}"
{{- end -}}

{{- define "mirrorcast.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "mirrorcast.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The config file's name in the pod: its extension tells mirrorcast how to read it. */}}
{{- define "mirrorcast.configFile" -}}
{{- if .Values.config.existingConfigMap -}}
{{- .Values.config.existingConfigMapKey -}}
{{- else if .Values.config.resource -}}
mm2.yaml
{{- else -}}
mm2.properties
{{- end -}}
{{- end -}}

{{- define "mirrorcast.configMapName" -}}
{{- default (include "mirrorcast.fullname" .) .Values.config.existingConfigMap -}}
{{- end -}}

{{/* The config's text, as the ConfigMap holds it (empty for an existing ConfigMap). Where it
does not say how many copier threads to run, it gets the number the pods are sized for: else
mirrorcast would run one per core of the node. */}}
{{- define "mirrorcast.configText" -}}
{{- $threads := include "mirrorcast.copierThreads" . -}}
{{- if .Values.config.existingConfigMap -}}
{{- else if .Values.config.resource -}}
{{- $resource := deepCopy .Values.config.resource -}}
{{- range ($resource.spec | default dict).mirrors | default list -}}
{{- $connector := .sourceConnector | default dict -}}
{{- if not (hasKey $connector "tasksMax") -}}
{{- $_ := set $connector "tasksMax" (int $threads) -}}
{{- $_ := set . "sourceConnector" $connector -}}
{{- end -}}
{{- end -}}
{{- toYaml $resource -}}
{{- else -}}
{{- required "config.properties, config.resource or config.existingConfigMap is required" .Values.config.properties -}}
{{- if not (include "mirrorcast.propertiesTasksMax" .) }}
# Written by the chart: the copier threads its pods are sized for (copierThreads).
tasks.max = {{ $threads }}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* tasks.max as the properties file writes it, if it does. */}}
{{- define "mirrorcast.propertiesTasksMax" -}}
{{- $line := regexFind "(?m)^[ \\t]*tasks\\.max[ \\t]*[=:][ \\t]*[0-9]+" (.Values.config.properties | default "") -}}
{{- if $line -}}{{- regexFind "[0-9]+$" $line -}}{{- end -}}
{{- end -}}

{{/* Copier threads per source (tasks.max): set, or read from the config, or 2. */}}
{{- define "mirrorcast.copierThreads" -}}
{{- $threads := int .Values.copierThreads -}}
{{- if and (eq $threads 0) (not .Values.config.existingConfigMap) -}}
{{- if .Values.config.resource -}}
{{- range (.Values.config.resource.spec | default dict).mirrors | default list -}}
{{- $asked := int ((.sourceConnector | default dict).tasksMax | default 0) -}}
{{- if gt $asked $threads -}}{{- $threads = $asked -}}{{- end -}}
{{- end -}}
{{- else -}}
{{- $threads = int (include "mirrorcast.propertiesTasksMax" . | default "0") -}}
{{- end -}}
{{- end -}}
{{- if eq $threads 0 -}}{{- $threads = 2 -}}{{- end -}}
{{- $threads -}}
{{- end -}}

{{/* Requests and limits: base + threads x per thread; memory limited at twice the request. */}}
{{- define "mirrorcast.resources" -}}
{{- if .Values.resources -}}
{{- toYaml .Values.resources -}}
{{- else -}}
{{- $threads := int (include "mirrorcast.copierThreads" .) -}}
{{- $cpu := add (include "mirrorcast.millicores" .Values.resourcesBase.cpu) (mul $threads (include "mirrorcast.millicores" .Values.resourcesPerCopierThread.cpu)) -}}
{{- $memory := add (include "mirrorcast.mebibytes" .Values.resourcesBase.memory) (mul $threads (include "mirrorcast.mebibytes" .Values.resourcesPerCopierThread.memory)) -}}
requests:
  cpu: {{ printf "%dm" (int $cpu) }}
  memory: {{ printf "%dMi" (int $memory) }}
limits:
  memory: {{ printf "%dMi" (int (mul 2 $memory)) }}
{{- end -}}
{{- end -}}

{{- define "mirrorcast.millicores" -}}
{{- $v := toString . -}}
{{- if hasSuffix "m" $v -}}{{- trimSuffix "m" $v | int -}}{{- else -}}{{- mulf (float64 $v) 1000 | int -}}{{- end -}}
{{- end -}}

{{- define "mirrorcast.mebibytes" -}}
{{- $v := toString . -}}
{{- if hasSuffix "Gi" $v -}}{{- mul (trimSuffix "Gi" $v | int) 1024 -}}
{{- else if hasSuffix "Mi" $v -}}{{- trimSuffix "Mi" $v | int -}}
{{- else -}}{{- fail (printf "resources: memory %q must be written in Mi or Gi" $v) -}}
{{- end -}}
{{- end -}}

{{- define "mirrorcast.usesKubernetesApi" -}}
{{- if or .Values.kubernetesApi.secrets .Values.kubernetesApi.configMaps -}}true{{- end -}}
{{- end -}}

{{/* Pods: set, or the resource's spec.replicas, or Strimzi's 3. More than one pod needs a
config whose processes share the work (a resource's spec.replicas above 1, a properties file
without instances.group.enabled = false): else each pod would copy everything. */}}
{{- define "mirrorcast.replicas" -}}
{{- $resource := 0 -}}
{{- if .Values.config.resource -}}
{{- $spec := .Values.config.resource.spec | default dict -}}
{{- $resource = 3 -}}
{{- if hasKey $spec "replicas" -}}{{- $resource = int $spec.replicas -}}{{- end -}}
{{- end -}}
{{- $pods := 3 -}}
{{- if not (kindIs "invalid" .Values.replicas) -}}{{- $pods = int .Values.replicas -}}
{{- else if .Values.config.resource -}}{{- $pods = $resource -}}
{{- end -}}
{{- if gt $pods 1 -}}
{{- if and .Values.config.resource (le $resource 1) -}}
{{- fail (printf "replicas: %d pods, but the resource's spec.replicas is %d: each pod would copy everything (set spec.replicas to %d)" $pods $resource $pods) -}}
{{- end -}}
{{- if and (not .Values.config.existingConfigMap) (not .Values.config.resource) -}}
{{- if regexMatch "(?m)^[ \\t]*instances\\.group\\.enabled[ \\t]*[=:][ \\t]*false" (.Values.config.properties | default "") -}}
{{- fail (printf "replicas: %d pods, but the properties say instances.group.enabled = false: each pod would copy everything" $pods) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $pods -}}
{{- end -}}

{{/*
With monitoring.mm2Metrics: the scrape labels Strimzi's MirrorMaker 2 dashboard and alerts
select by, added by relabeling (nothing on the pods).
*/}}
{{- define "mirrorcast.mm2Relabelings" -}}
{{- if .Values.monitoring.mm2Metrics.enabled }}
relabelings:
  - targetLabel: strimzi_io_kind
    replacement: KafkaMirrorMaker2
  - targetLabel: strimzi_io_cluster
    replacement: {{ .Values.monitoring.mm2Metrics.clusterName | default (include "mirrorcast.fullname" .) | quote }}
  - sourceLabels: [__meta_kubernetes_pod_name]
    targetLabel: kubernetes_pod_name
{{- end }}
{{- end }}
