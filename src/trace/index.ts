export * from './chart.ts';
export * from './chrome.ts';
export * from './mermaid.ts';
export * from './timeline.ts';
