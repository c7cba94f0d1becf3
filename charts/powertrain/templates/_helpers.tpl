{{/* Names are capped at 63 characters: they become label values and DNS names. */}}
{{- define "powertrain.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "powertrain.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "powertrain.operator.fullname" -}}
{{- printf "%s-operator" (include "powertrain.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "powertrain.agent.fullname" -}}
{{- printf "%s-agent" (include "powertrain.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "powertrain.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "powertrain.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: powertrain
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "powertrain.operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "powertrain.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "powertrain.agent.selectorLabels" -}}
app.kubernetes.io/name: {{ include "powertrain.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: agent
{{- end -}}

{{- define "powertrain.operator.serviceAccountName" -}}
{{- default (include "powertrain.operator.fullname" .) .Values.operator.serviceAccount.name -}}
{{- end -}}

{{- define "powertrain.agent.serviceAccountName" -}}
{{- default (include "powertrain.agent.fullname" .) .Values.agent.serviceAccount.name -}}
{{- end -}}

{{/* A digest, when given, pins the exact image; otherwise the tag (default: the chart's appVersion). */}}
{{- define "powertrain.image" -}}
{{- $img := .Values.image -}}
{{- if $img.digest -}}
{{- printf "%s@%s" $img.repository $img.digest -}}
{{- else -}}
{{- printf "%s:%s" $img.repository (default .Chart.AppVersion $img.tag) -}}
{{- end -}}
{{- end -}}

{{/* The agent runs as root only for the actuator: NVML's power-limit call needs uid 0 (and CAP_SYS_ADMIN). */}}
{{- define "powertrain.agent.needsRoot" -}}
{{- if .Values.agent.actuator.enabled -}}true{{- end -}}
{{- end -}}

{{- define "powertrain.peeringName" -}}
{{- default (include "powertrain.fullname" .) .Values.operator.peering.name -}}
{{- end -}}
