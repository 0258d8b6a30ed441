{{/*
Chart name, overridable with nameOverride.
*/}}
{{- define "svcprobe.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: release name + chart name unless the release name already contains it.
Truncated to 63 characters because some Kubernetes name fields are limited to that (DNS-1123).
*/}}
{{- define "svcprobe.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Namespace of the release's resources.
*/}}
{{- define "svcprobe.namespace" -}}
{{- default .Release.Namespace .Values.namespaceOverride }}
{{- end }}

{{/*
Chart label value.
*/}}
{{- define "svcprobe.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels: minimal and immutable (never helm.sh/chart or the version).
*/}}
{{- define "svcprobe.selectorLabels" -}}
app.kubernetes.io/name: {{ include "svcprobe.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Common labels.
*/}}
{{- define "svcprobe.labels" -}}
helm.sh/chart: {{ include "svcprobe.chart" . }}
{{ include "svcprobe.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: svcprobe
{{- end }}

{{/*
ServiceAccount name.
*/}}
{{- define "svcprobe.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "svcprobe.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Container image reference: registry/repository, then @digest or :tag (default appVersion).
*/}}
{{- define "svcprobe.image" -}}
{{- $repo := .Values.image.repository }}
{{- if .Values.image.registry }}
{{- $repo = printf "%s/%s" .Values.image.registry .Values.image.repository }}
{{- end }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" $repo .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" $repo (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
HTTP port, taken from config.listen (HOST:PORT or [IPv6]:PORT) so that the container port,
probes and Service always match what the agent listens on. 9142 when listen is unset.
*/}}
{{- define "svcprobe.port" -}}
{{- $listen := toString (default "0.0.0.0:9142" (.Values.config).listen) }}
{{- $port := regexFind ":[0-9]+$" $listen | trimPrefix ":" }}
{{- if not $port }}
{{- fail (printf "config.listen must be HOST:PORT (got %q)" $listen) }}
{{- end }}
{{- $port }}
{{- end }}

{{/*
Relabelings shared by the ServiceMonitor and the PodMonitor: node identity from the scraped
pod, the pod name, and a fixed job="svcprobe" that the shipped alert rules select on.
*/}}
{{- define "svcprobe.relabelings" -}}
- action: replace
  sourceLabels: [__meta_kubernetes_pod_node_name]
  targetLabel: node
- action: replace
  sourceLabels: [__meta_kubernetes_pod_name]
  targetLabel: pod
- action: replace
  targetLabel: job
  replacement: svcprobe
{{- end }}

{{/*
Runbook link of one alert (the argument is a dict: "root" the chart context, "alert" the alert
name). Default: the runbook every agent serves at /runbook, through the API server's service
proxy as `kubectl proxy` exposes it on its default address, via this release's headless Service
and port name. prometheusRule.runbookBaseURL replaces everything before the anchor.
*/}}
{{- define "svcprobe.runbookURL" -}}
{{- $root := .root }}
{{- $base := printf "http://localhost:8001/api/v1/namespaces/%s/services/%s:%s/proxy/runbook" (include "svcprobe.namespace" $root) (include "svcprobe.fullname" $root) $root.Values.service.portName }}
{{- with $root.Values.prometheusRule.runbookBaseURL }}
{{- $base = trimSuffix "/" . }}
{{- end }}
{{- printf "%s#%s" $base (lower .alert) }}
{{- end }}
