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

{{/* The config's text, as the ConfigMap holds it (empty for an existing ConfigMap). */}}
{{- define "mirrorcast.configText" -}}
{{- if .Values.config.existingConfigMap -}}
{{- else if .Values.config.resource -}}
{{- toYaml .Values.config.resource -}}
{{- else -}}
{{- required "config.properties, config.resource or config.existingConfigMap is required" .Values.config.properties -}}
{{- end -}}
{{- end -}}

{{/* Copier threads (tasks.max): set, or read from the config, or 2. */}}
{{- define "mirrorcast.copierThreads" -}}
{{- $threads := int .Values.copierThreads -}}
{{- if eq $threads 0 -}}
{{- if .Values.config.resource -}}
{{- range (.Values.config.resource.spec | default dict).mirrors | default list -}}
{{- $asked := int ((.sourceConnector | default dict).tasksMax | default 0) -}}
{{- if gt $asked $threads -}}{{- $threads = $asked -}}{{- end -}}
{{- end -}}
{{- else if .Values.config.properties -}}
{{- $line := regexFind "(?m)^[ \\t]*tasks\\.max[ \\t]*[=:][ \\t]*[0-9]+" .Values.config.properties -}}
{{- if $line -}}{{- $threads = int (regexFind "[0-9]+$" $line) -}}{{- end -}}
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
{{- $resource = int ($spec.replicas | default 3) -}}
{{- end -}}
{{- $pods := 3 -}}
{{- if not (kindIs "invalid" .Values.replicas) -}}{{- $pods = int .Values.replicas -}}
{{- else if $resource -}}{{- $pods = $resource -}}
{{- end -}}
{{- if gt $pods 1 -}}
{{- if eq $resource 1 -}}
{{- fail (printf "replicas: %d pods, but the resource's spec.replicas is 1: each pod would copy everything (set spec.replicas to %d)" $pods $pods) -}}
{{- end -}}
{{- if regexMatch "(?m)^[ \\t]*instances\\.group\\.enabled[ \\t]*[=:][ \\t]*false" (.Values.config.properties | default "") -}}
{{- fail (printf "replicas: %d pods, but the properties say instances.group.enabled = false: each pod would copy everything" $pods) -}}
{{- end -}}
{{- end -}}
{{- $pods -}}
{{- end -}}
