export { type AfterSave, type SaveOptions, type SaveResult, save } from "./save.ts";
