// The dashboard's own view of the API's answers (api.ts maps the wire JSON onto these).

export interface Cell {
  key: string;
  label: string;
  cluster: string;
  error: number | null; // relative twin error (fraction), latest period
  state: string;
}

export interface Cluster {
  id: string;
  cells: Cell[];
  dtbsm: number | null;
  firing: boolean;
  latest: number | null; // epoch s of the newest mirrored period
}

export interface Series {
  kpi: string;
  unit: string;
  xs: number[]; // epoch seconds
  real: (number | null)[];
  predicted: (number | null)[];
  calibrated: (number | null)[];
}

export interface Mark {
  t: number;
  kind: "change" | "resync";
  label: string;
}

export interface FidelityPoint {
  t: number;
  value: number | null;
  lower: number | null;
  upper: number | null;
}

export interface Fidelity {
  cluster: string;
  threshold: number | null;
  points: FidelityPoint[];
}

export interface Alert {
  id: string;
  type: string;
  severity: string;
  cluster: string;
  cell: string;
  text: string;
  active: boolean;
  at: string;
}

export interface Change {
  changeId: string;
  cellKey: string;
  cluster: string;
  attribute: string;
  from: unknown;
  to: unknown;
  state: string;
  requester: string;
  requestedAt: string;
  updatedAt: string;
  reason: string | null;
  decidedBy: string | null;
}
