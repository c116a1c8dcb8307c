"""The seed's FastAPI exchange service, as the course lab builds it: the
baseline the benchmark compares exchanged with.

BackgroundTasks after the answer, one asyncio.sleep per bill (gathered), one
httpx PUT per callback. Run: uvicorn app:app --port 8010 (Debian's uvicorn).
Environment: MAIN_SERVICE_URL, SECRET_TOKEN, LATENCY_MIN, LATENCY_MAX.
"""
import asyncio
import os
import random

import httpx
from fastapi import BackgroundTasks, FastAPI, HTTPException

MAIN_SERVICE_URL = os.getenv("MAIN_SERVICE_URL", "http://localhost:3001")
SECRET_TOKEN = os.getenv("SECRET_TOKEN", "MY_SECRET_TOKEN")
LATENCY = (float(os.getenv("LATENCY_MIN", "1")), float(os.getenv("LATENCY_MAX", "3")))

app = FastAPI(title="Async Exchange Service")


async def calculate_single_bill_async(bill, rate):
    await asyncio.sleep(random.uniform(*LATENCY))
    subtotal_rub = bill["denomination"] * bill["count"] * rate
    print(f"Рассчитана купюра {bill['denomination_id']}: {subtotal_rub:.2f} RUB")
    return {"denomination_id": bill["denomination_id"], "subtotal_rub": round(subtotal_rub, 2)}


async def send_exchange_result_async(request_id, exchange_rate, bills):
    breakdown = await asyncio.gather(*[calculate_single_bill_async(b, exchange_rate) for b in bills])
    async with httpx.AsyncClient() as client:
        await client.put(f"{MAIN_SERVICE_URL}/api/exchange_result",
                         json={"token": SECRET_TOKEN, "request_id": request_id,
                               "breakdown": breakdown})


@app.post("/api/exchange_async")
async def submit_request(data: dict, background_tasks: BackgroundTasks):
    if not data.get("request_id") or not data.get("exchange_rate") or not data.get("bills"):
        raise HTTPException(status_code=400, detail="Invalid payload")
    background_tasks.add_task(send_exchange_result_async, request_id=data["request_id"],
                              exchange_rate=data["exchange_rate"], bills=data["bills"])
    return {"status": "ok"}


@app.get("/")
async def root():
    return {"message": "Async Exchange Service is running"}
